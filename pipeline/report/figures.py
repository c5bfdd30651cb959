"""The figures of the analyst report, each computed by the warehouse from one SQL file of ``sql/report/``.

Every query aggregates or lists a bounded number of rows (at most ``TOP_NAMES`` task names, ``TOP_INSTANCES``
instances, ``LISTED_ROWS`` failed backups or Running jobs, one row per day and status), so a report over
millions of stored jobs holds only a few thousand values in memory. A list that stops short also carries how
many rows it left out.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from pipeline.report.coverage import Coverage, as_date, read_coverage
from pipeline.report.period import ReportPeriod
from pipeline.sqlfiles import read_sql
from pipeline.storage.warehouse import Warehouse

# The DDS task names of a backup (a snapshot, automatic or manual), as in sql/queries/failed_backups_by_instance.sql.
BACKUP_TASK_NAMES = ("MongodbSnapshotBackup", "MongodbSnapshotEBackup")
TOP_NAMES = 10
TOP_INSTANCES = 15
LISTED_ROWS = 20
# The age bands of Running jobs: (column of sql/report/running_by_age.sql, label, its lower bound).
AGE_BANDS = (
    ("under_1_hour", "< 1 h", timedelta(0)),
    ("hours_1_to_6", "1-6 h", timedelta(hours=1)),
    ("hours_6_to_24", "6-24 h", timedelta(hours=6)),
    ("days_1_to_7", "1-7 days", timedelta(days=1)),
    ("over_7_days", "> 7 days", timedelta(days=7)),
)


@dataclass(frozen=True)
class ReportScope:
    """Whose jobs a report covers: one project's (``project_id``) or every project's (None), named ``label``;
    ``coverage_projects`` are the projects whose sync coverage it shows (empty: every project of the ledger),
    ``start_date`` the pipeline's first day (DDS_START_DATE)."""

    project_id: str | None
    label: str
    coverage_projects: tuple[str, ...]
    start_date: date


@dataclass(frozen=True)
class ListedRows:
    """At most a bounded number of rows of a list, and how many the whole list holds."""

    rows: pd.DataFrame
    total: int

    @property
    def left_out(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class ReportFigures:
    """Everything a report shows. Counts are jobs; durations are seconds; ``generated_at`` is when the ages of
    Running jobs are measured."""

    period: ReportPeriod
    scope: ReportScope
    generated_at: datetime
    # day, status, jobs: one row per day and status with jobs.
    jobs_by_day: pd.DataFrame
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
            ", ".join(f"{counts[state]} {state}" for state in counts if counts[state])
            if self.coverage.states else "no sync ledger in the warehouse" if not self.coverage.ledger_present
            else "no day to count"
        )
        return {
            "period": str(self.period),
            "projects": self.scope.label,
            "jobs": f"{self.jobs:,}",
            "failed jobs": f"{failed:,}{rate}",
            "Running now": f"{self.running.total:,}",
            "backups": f"{self.backups:,}, {self.failed_backups.total:,} failed",
            "days": covered,
        }


def collect_figures(warehouse: Warehouse, period: ReportPeriod, scope: ReportScope, now: datetime) -> ReportFigures:
    """All of a report's figures, read from ``warehouse`` for ``period`` and ``scope``; ages measured at ``now``."""
    where = {
        "first_day": period.first_day,
        "last_day": period.last_day,
        "all_projects": 1 if scope.project_id is None else 0,
        "project_id": scope.project_id or "",
    }
    backups = {**where, "backup_names": list(BACKUP_TASK_NAMES)}
    jobs_by_day = warehouse.query(read_sql("report/jobs_per_day_by_status.sql"), **where)
    jobs_by_day["day"] = jobs_by_day["day"].map(as_date)
    failures = _listed(warehouse, "failure_rate_by_name.sql", "names_with_failures", TOP_NAMES,
                       half_day=period.half_day, **where)
    durations = _listed(warehouse, "duration_percentiles_by_name.sql", "names", TOP_NAMES, **where)
    by_instance = _listed(warehouse, "backups_by_instance.sql", "instances", TOP_INSTANCES, **backups)
    total_backups = int(by_instance.rows["all_backups"].iloc[0]) if by_instance.total else 0
    by_instance = ListedRows(by_instance.rows.drop(columns=["all_backups", "all_failed"]), by_instance.total)
    failed_backups = _listed(warehouse, "failed_backups.sql", "failed_backups", LISTED_ROWS, **backups)
    failed_backups.rows["created_at"] = _utc(failed_backups.rows["created_at"])
    # Running jobs are listed however long ago they started: a stuck job matters most.
    until = {name: value for name, value in where.items() if name != "first_day"}
    running = _listed(warehouse, "running_jobs.sql", "running_jobs", LISTED_ROWS, **until)
    for column in ("created_at", "last_seen_at"):
        running.rows[column] = _utc(running.rows[column])
    running.rows["age"] = pd.Timestamp(now) - running.rows["created_at"]
    bounds = {name: now - lower for name, lower in
              zip(("hour_ago", "six_hours_ago", "day_ago", "week_ago"), (b[2] for b in AGE_BANDS[1:]))}
    by_age = warehouse.query(read_sql("report/running_by_age.sql"), **until, **bounds).iloc[0]
    return ReportFigures(
        period=period,
        scope=scope,
        generated_at=now,
        jobs_by_day=jobs_by_day.astype({"jobs": "int64"}),
        failures_by_name=failures,
        durations_by_name=durations,
        backups_by_instance=by_instance,
        backups=total_backups,
        failed_backups=failed_backups,
        running=running,
        running_by_age={label: int(by_age[column] or 0) for column, label, _ in AGE_BANDS},
        coverage=read_coverage(warehouse, period.first_day, period.last_day, scope.coverage_projects,
                               scope.start_date, now),
    )


def _listed(warehouse: Warehouse, sql_file: str, total_column: str, top: int, **params: object) -> ListedRows:
    """The rows of a bounded query whose ``total_column`` repeats the size of the whole list on every row."""
    rows = warehouse.query(read_sql(f"report/{sql_file}"), top=top, **params)
    total = int(rows[total_column].iloc[0]) if len(rows) else 0
    rows = rows.drop(columns=total_column)
    # PostgreSQL's SUM of integers is numeric (a Decimal in Python): counts are made plain integers.
    counts = [c for c in rows.columns if c in _COUNT_COLUMNS]
    return ListedRows(rows.astype({c: "int64" for c in counts}), total)


_COUNT_COLUMNS = {"jobs", "failed", "jobs_first_half", "failed_first_half", "completed_jobs", "backups",
                  "completed", "failed", "all_backups", "all_failed"}


def _utc(values: pd.Series) -> pd.Series:
    # SQLite returns timestamps as their UTC text, PostgreSQL as aware datetimes.
    return pd.to_datetime(values, utc=True, format="ISO8601")
