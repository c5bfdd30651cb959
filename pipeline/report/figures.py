"""The figures of the analyst report, computed by the warehouse with the SQL files of ``sql/report/``.

Every query aggregates or lists a bounded number of rows (at most ``TOP_NAMES`` task names, ``TOP_INSTANCES``
instances, ``LISTED_ROWS`` failed backups or Running jobs, one row per day, status and task name), so a report
over millions of stored jobs holds only a few thousand values in memory. Jobs per day by status and failures by
task name are sums of one aggregated result (one pass over the period's jobs instead of two). A list that stops
short also carries how many rows it left out.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from pipeline.report.coverage import Coverage, as_date, read_coverage, state_label
from pipeline.report.period import ReportPeriod, ReportScope  # noqa: F401 - ReportScope re-exported
from pipeline.sqlfiles import read_sql
from pipeline.warehouse.store import Warehouse

if TYPE_CHECKING:
    # pandas is imported by the functions that compute a report: loading the Dagster definitions needs none of it.
    import pandas as pd

# The DDS task names of a backup (a snapshot, automatic or manual), as in sql/queries/failed_backups_by_instance.sql.
BACKUP_TASK_NAMES = ("MongodbSnapshotBackup", "MongodbSnapshotEBackup")
TOP_NAMES = 10
TOP_INSTANCES = 15
# Instances listed by the freshness of their last backup, those without a recent one first; more are counted.
LISTED_INSTANCES = 50
# A backup older than this is overdue: DDS makes automatic backups daily.
BACKUP_DUE = timedelta(hours=24)
# The freshness values of sql/report/backup_freshness_by_instance.sql.
NO_BACKUP, BACKUP_OVERDUE, BACKED_UP = 0, 1, 2
LISTED_ROWS = 20
# Connections reading at once: the passes over the period's jobs dominate a report's time.
PARALLEL_QUERIES = 2
# The age bands of Running jobs: (column of sql/report/running_by_age.sql, label, its lower bound).
AGE_BANDS = (
    ("under_1_hour", "< 1 h", timedelta(0)),
    ("hours_1_to_6", "1-6 h", timedelta(hours=1)),
    ("hours_6_to_24", "6-24 h", timedelta(hours=6)),
    ("days_1_to_7", "1-7 days", timedelta(days=1)),
    ("over_7_days", "> 7 days", timedelta(days=7)),
)


@dataclass(frozen=True)
class ListedRows:
    """At most a bounded number of rows of a list, and how many the whole list holds."""

    rows: "pd.DataFrame"
    total: int

    @property
    def left_out(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class BackupFreshness:
    """Is every instance backed up? The instances with a job in the period (``rows``: project_id, instance_id,
    instance_name, last_backup_at, backups, failed, freshness, since), the ones without a successful backup in the
    period (NO_BACKUP) first, then those whose last is older than BACKUP_DUE at ``as_of`` (BACKUP_OVERDUE), then
    the rest (BACKED_UP), the oldest last backup first; ``since`` is ``as_of`` minus the last backup."""

    listed: ListedRows
    without_backup: int
    overdue: int
    as_of: datetime

    def summary(self) -> str:
        """One line: how many instances are backed up within BACKUP_DUE, and how many are not."""
        total = self.listed.total
        if not total:
            return "no instance had a job in the period"
        recent = total - self.without_backup - self.overdue
        hours = int(BACKUP_DUE.total_seconds() // 3600)
        return (f"{recent:,} of {total:,} within {hours} h; {self.without_backup:,} without a backup in the period, "
                f"{self.overdue:,} not within {hours} h")


@dataclass(frozen=True)
class ReportFigures:
    """Everything a report shows. Counts are jobs; durations are seconds; ``generated_at`` is when the ages of
    Running jobs are measured."""

    period: ReportPeriod
    scope: ReportScope
    generated_at: datetime
    # day, status, jobs: one row per day and status with jobs.
    jobs_by_day: "pd.DataFrame"
    # day, jobs, failed, backups, failed_backups: one row per day with jobs.
    failures_by_day: "pd.DataFrame"
    backup_freshness: BackupFreshness
    # name, jobs, failed, jobs_first_half, failed_first_half (total: names with a failed job).
    failures_by_name: ListedRows
    # name, completed_jobs, p50_seconds, p90_seconds (total: names with a completed job).
    durations_by_name: ListedRows
    # project_id, instance_id, instance_name, backups, completed, failed (total: instances with a backup).
    backups_by_instance: ListedRows
    backups: int
    failed_backups: ListedRows  # project_id, instance_id, instance_name, name, created_at, fail_reason
    running: ListedRows  # project_id, id, name, instance_name, progress_pct, created_at, last_seen_at, age
    running_by_age: dict[str, int]  # label of AGE_BANDS -> Running jobs
    coverage: Coverage

    @property
    def jobs(self) -> int:
        return int(self.jobs_by_day["jobs"].sum())

    def jobs_in_status(self, status: str) -> int:
        return int(self.jobs_by_day.loc[self.jobs_by_day["status"] == status, "jobs"].sum())

    def headline(self) -> dict[str, str]:
        """The headline figures, as text, in reading order."""
        failed = self.jobs_in_status("Failed")
        rate = f" ({100 * failed / self.jobs:.1f}% of jobs)" if self.jobs else ""
        counts = self.coverage.counts()
        covered = (
            ", ".join(f"{counts[state]} {state_label(state)}" for state in counts if counts[state])
            if self.coverage.states else "no day to count"
        )
        return {
            "period": str(self.period),
            "projects": self.scope.label,
            "instances backed up": self.backup_freshness.summary(),
            "jobs": f"{self.jobs:,}",
            "failed jobs": f"{failed:,}{rate}",
            "Running now": f"{self.running.total:,}",
            "backups": f"{self.backups:,}, {self.failed_backups.total:,} failed",
            "days": covered,
        }


def collect_figures(warehouse: Warehouse, period: ReportPeriod, scope: ReportScope, now: datetime) -> ReportFigures:
    """All of a report's figures, read from ``warehouse`` for ``period`` and ``scope``; ages measured at ``now``."""
    import pandas as pd

    where = {
        "first_day": period.first_day,
        "last_day": period.last_day,
        "all_projects": 1 if scope.project_id is None else 0,
        "project_id": scope.project_id or "",
    }
    backups = {**where, "backup_names": list(BACKUP_TASK_NAMES)}
    # Running jobs are listed however long ago they started: a stuck job matters most.
    until = {name: value for name, value in where.items() if name != "first_day"}
    bounds = {name: now - lower for name, lower in
              zip(("hour_ago", "six_hours_ago", "day_ago", "week_ago"), (b[2] for b in AGE_BANDS[1:]))}
    # First, alone: a warehouse's first read also creates its schema when missing, which one connection should do.
    by_age = warehouse.query(read_sql("report/running_by_age.sql"), **until, **bounds).iloc[0]
    # The two passes over every job of the period first: on two connections they take the time of one.
    queries = {
        "duration_percentiles_by_name.sql": {**where, "top": TOP_NAMES},
        "jobs_by_day_status_name.sql": where,
        # The third pass over every job of the period (by instance), started before the light queries.
        "backup_freshness_by_instance.sql": {**backups, "top": LISTED_INSTANCES,
                                             "day_ago": backups_as_of(period, now) - BACKUP_DUE},
        "backups_by_instance.sql": {**backups, "top": TOP_INSTANCES},
        "failed_backups.sql": {**backups, "top": LISTED_ROWS},
        "running_jobs.sql": {**until, "top": LISTED_ROWS},
    }
    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES, thread_name_prefix="report-sql") as pool:
        pending = {name: pool.submit(warehouse.query, read_sql(f"report/{name}"), **params)
                   for name, params in queries.items()}
        coverage = read_coverage(warehouse, period.first_day, period.last_day, scope.coverage_projects,
                                 scope.start_date, now)
        results = {name: future.result() for name, future in pending.items()}
    by_day_status_name = results["jobs_by_day_status_name.sql"]
    by_day_status_name["day"] = by_day_status_name["day"].map(as_date)
    by_day_status_name["jobs"] = by_day_status_name["jobs"].astype("int64")
    by_instance = _listed(results["backups_by_instance.sql"], "instances")
    failed_backups = _listed(results["failed_backups.sql"], "failed_backups")
    failed_backups.rows["created_at"] = _utc(failed_backups.rows["created_at"])
    running = _listed(results["running_jobs.sql"], "running_jobs")
    for column in ("created_at", "last_seen_at"):
        running.rows[column] = _utc(running.rows[column])
    running.rows["age"] = pd.Timestamp(now) - running.rows["created_at"]
    return ReportFigures(
        period=period,
        scope=scope,
        generated_at=now,
        jobs_by_day=by_day_status_name.groupby(["day", "status"], as_index=False)["jobs"].sum(),
        failures_by_day=failures_by_day(by_day_status_name),
        backup_freshness=_freshness(results["backup_freshness_by_instance.sql"], backups_as_of(period, now)),
        failures_by_name=failures_by_name(by_day_status_name, period.half_day),
        durations_by_name=_listed(results["duration_percentiles_by_name.sql"], "names"),
        backups_by_instance=ListedRows(by_instance.rows.drop(columns="all_backups"), by_instance.total),
        backups=int(by_instance.rows["all_backups"].iloc[0]) if by_instance.total else 0,
        failed_backups=failed_backups,
        running=running,
        running_by_age={label: int(by_age[column] or 0) for column, label, _ in AGE_BANDS},
        coverage=coverage,
    )


def backups_as_of(period: ReportPeriod, now: datetime) -> datetime:
    """When the age of the last backups is measured: now, or the end of the period's last day when it is over."""
    end = datetime.combine(period.last_day + timedelta(days=1), time(), tzinfo=timezone.utc)
    return min(now, end)


def failures_by_day(by_day_status_name: "pd.DataFrame") -> "pd.DataFrame":
    """Jobs and failed jobs, all of them and the backups, per day with jobs, from the jobs counted per day, status
    and name."""
    failed = by_day_status_name["status"] == "Failed"
    backup = by_day_status_name["name"].isin(BACKUP_TASK_NAMES)
    counts = by_day_status_name.assign(
        failed=by_day_status_name["jobs"].where(failed, 0),
        backups=by_day_status_name["jobs"].where(backup, 0),
        failed_backups=by_day_status_name["jobs"].where(failed & backup, 0),
    )
    columns = ["jobs", "failed", "backups", "failed_backups"]
    return counts.groupby("day", as_index=False)[columns].sum().astype({c: "int64" for c in columns})


def failures_by_name(by_day_status_name: "pd.DataFrame", half_day: date) -> ListedRows:
    """The TOP_NAMES task names with the highest failure rate (failed of all jobs; the most failed jobs first on a
    tie, then by name) among those with a failed job, from the jobs counted per day, status and name; the first
    half of the period is the days before ``half_day``."""
    counts = by_day_status_name.assign(
        failed=by_day_status_name["jobs"].where(by_day_status_name["status"] == "Failed", 0),
        first_half=by_day_status_name["day"] < half_day,
    )
    counts = counts.assign(jobs_first_half=counts["jobs"].where(counts["first_half"], 0),
                           failed_first_half=counts["failed"].where(counts["first_half"], 0))
    by_name = counts.groupby("name", as_index=False)[["jobs", "failed", "jobs_first_half", "failed_first_half"]].sum()
    failing = by_name[by_name["failed"] > 0]
    failing = failing.assign(rate=failing["failed"] / failing["jobs"]).sort_values(
        ["rate", "failed", "name"], ascending=[False, False, True]).drop(columns="rate")
    return ListedRows(failing.head(TOP_NAMES).reset_index(drop=True), len(failing))


def _freshness(rows: "pd.DataFrame", as_of: datetime) -> BackupFreshness:
    import pandas as pd

    without_backup = int(rows["without_backup"].iloc[0]) if len(rows) else 0
    overdue = int(rows["stale"].iloc[0]) if len(rows) else 0
    listed = _listed(rows.drop(columns=["without_backup", "stale"]), "instances")
    listed.rows["last_backup_at"] = _utc(listed.rows["last_backup_at"])
    listed.rows["since"] = pd.Timestamp(as_of) - listed.rows["last_backup_at"]
    return BackupFreshness(listed, without_backup, overdue, as_of)


def _listed(rows: "pd.DataFrame", total_column: str) -> ListedRows:
    """The rows of a bounded query whose ``total_column`` repeats the size of the whole list on every row."""
    total = int(rows[total_column].iloc[0]) if len(rows) else 0
    rows = rows.drop(columns=total_column)
    # PostgreSQL's SUM of integers is numeric (a Decimal in Python): counts are made plain integers.
    counts = [c for c in rows.columns if c in _COUNT_COLUMNS]
    return ListedRows(rows.astype({c: "int64" for c in counts}), total)


_COUNT_COLUMNS = {"completed_jobs", "backups", "completed", "failed", "all_backups", "freshness"}


def _utc(values: "pd.Series") -> "pd.Series":
    import pandas as pd

    # SQLite returns timestamps as their UTC text, PostgreSQL as aware datetimes.
    return pd.to_datetime(values, utc=True, format="ISO8601")
