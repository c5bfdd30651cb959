"""Helpers of the report tests: a warehouse of known jobs, the sync ledger, what the figures must be (computed
here with pandas over the rows inserted, independently of the report's SQL), and a reader of the report's HTML."""

import base64
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.records.normalize import normalize_jobs
from pipeline.report.build import write_report
from pipeline.report.figures import (
    AGE_BANDS,
    BACKUP_DUE,
    BACKUP_TASK_NAMES,
    LISTED_INSTANCES,
    LISTED_ROWS,
    TOP_INSTANCES,
    TOP_NAMES,
    ReportScope,
)
from pipeline.report.period import ReportPeriod
from pipeline.warehouse.ledger import SYNC_LEDGER
from pipeline.warehouse.store import Warehouse

FIRST_DAY, LAST_DAY = date(2026, 11, 1), date(2026, 11, 30)
PERIOD = ReportPeriod(FIRST_DAY, LAST_DAY)
# Ten minutes before the end of the period's last day: the ages of Running jobs are measured here.
NOW = datetime.combine(LAST_DAY, time(23, 50), tzinfo=timezone.utc)
# 14 task names, the two backup kinds among them: more than the report lists, so its cut is tested too.
NAMES = ("MongodbSnapshotBackup", "MongodbSnapshotEBackup", "RestartInstance", "ResizeMongoDBInstance",
         "UpgradeDatabaseVersion", "EnlargeMongoDBVolume", "SwitchPrimary", "ModifyPort", "BindPublicIP",
         "CreateMongoDB", "RestoreMongoDB", "AddReadonlyNode", "ModifyOpLogSize", "AzMigrate")
INSTANCES = 20


def _record(job_id: str, name: str, status: str, created: datetime, seconds: int, instance: int) -> dict:
    ended = "" if status == "Running" else (created + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {"id": job_id, "name": name, "instance_id": f"inst-{instance:02d}", "instance_name": f"dds-{instance:02d}",
            "status": status, "progress": "45%" if status == "Running" else "",
            "fail_reason": f"{name} failed on dds-{instance:02d}" if status == "Failed" else "",
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S+0000"), "ended_at": ended}


def known_jobs(seed: int = 7, failures: bool = True) -> pd.DataFrame:
    """Jobs of two projects in and around PERIOD, as normalized rows.

    Project p1's name k has 3(k+1) failed jobs in the period and p2 adds at most one, so no two names tie on
    failures; durations are drawn without repetition, so no two names tie on p90. ``failures=False``: none failed.
    """
    rng = random.Random(seed)
    seconds = iter(rng.sample(range(30, 20_000), 5_000))
    frames = []
    for project, scale in (("p1", 1), ("p2", 0)):
        records = []
        for k, name in enumerate(NAMES):
            failed = (3 * (k + 1) if scale else k % 2) if failures else 0
            running = 1 + k % 3 if scale else k % 2
            completed = 12 + 2 * k if scale else 3
            statuses = ["Failed"] * failed + ["Running"] * running + ["Completed"] * completed
            for n, status in enumerate(statuses):
                created = datetime.combine(FIRST_DAY, time(), tzinfo=timezone.utc) + timedelta(
                    minutes=rng.randrange(30 * 24 * 60))
                records.append(_record(f"{project}-{name}-{n:03d}", name, status, created, next(seconds),
                                       rng.randrange(INSTANCES)))
            # Outside the period (before and after it): never counted, whatever their status.
            for n, offset in enumerate((-3, -1, 1, 2)):
                created = datetime.combine(FIRST_DAY if offset < 0 else LAST_DAY, time(12), tzinfo=timezone.utc)
                records.append(_record(f"{project}-{name}-out{n}", name, "Failed" if failures else "Completed",
                                       created + timedelta(days=offset), next(seconds), rng.randrange(INSTANCES)))
        # Running jobs younger than an hour and a day, on the period's last day.
        for n, minutes in enumerate((20, 150, 600)):
            records.append(_record(f"{project}-young-{n}", "RestartInstance", "Running",
                                   NOW - timedelta(minutes=minutes), 0, n))
        frames.append(normalize_jobs(records, project, seen_at=NOW).frame)
    return pd.concat(frames, ignore_index=True)


def backup_jobs(project: str = "p1") -> pd.DataFrame:
    """Four instances of ``project`` as of NOW (11-30 23:50), in the order the report lists them:
    ``never-ok`` (inst-a: its backup of the period failed, one before the period succeeded), ``no-backup-job``
    (inst-b: a restart, no backup), ``two-days`` (inst-c: backed up 11-28, overdue), ``fresh`` (inst-d: a backup
    created 11-30 20:00 that ended 22:50, an hour before NOW)."""
    def job(job_id, name, status, instance, instance_name, created, ended):
        return {"id": job_id, "name": name, "instance_id": instance, "instance_name": instance_name,
                "status": status, "progress": "", "fail_reason": "snapshot failed" if status == "Failed" else "",
                "created_at": created, "ended_at": ended}

    records = [
        job("b1", "MongodbSnapshotBackup", "Completed", "inst-a", "never-ok", "2026-10-25T01:00:00+0000",
            "2026-10-25T01:30:00+0000"),
        job("b2", "MongodbSnapshotBackup", "Failed", "inst-a", "never-ok", "2026-11-29T10:00:00+0000",
            "2026-11-29T10:20:00+0000"),
        job("b3", "RestartInstance", "Completed", "inst-b", "no-backup-job", "2026-11-20T08:00:00+0000",
            "2026-11-20T08:05:00+0000"),
        job("b4", "MongodbSnapshotEBackup", "Completed", "inst-c", "two-days", "2026-11-28T20:00:00+0000",
            "2026-11-28T21:00:00+0000"),
        job("b5", "MongodbSnapshotBackup", "Completed", "inst-d", "fresh", "2026-11-30T20:00:00+0000",
            "2026-11-30T22:50:00+0000"),
    ]
    return normalize_jobs(records, project, seen_at=NOW).frame


def load(url: str, jobs: pd.DataFrame) -> Warehouse:
    warehouse = Warehouse(url)
    warehouse.ensure_schema()
    if len(jobs):
        warehouse.upsert(jobs)
    return warehouse


# --- What the figures must be ---------------------------------------------------------------------------------

@dataclass
class Expected:
    """Every figure of a report over ``jobs`` (the rows inserted) for PERIOD, computed with pandas."""

    jobs: pd.DataFrame
    project: str | None = None
    period: ReportPeriod = PERIOD
    now: datetime = NOW
    scoped: pd.DataFrame = field(init=False)
    in_period: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        scoped = self.jobs if self.project is None else self.jobs[self.jobs["project_id"] == self.project]
        self.scoped = scoped.assign(created_date=scoped["created_date"].astype(object))
        days = self.scoped["created_date"]
        self.in_period = self.scoped[(days >= self.period.first_day) & (days <= self.period.last_day)]

    def jobs_by_day(self) -> pd.DataFrame:
        counted = self.in_period.groupby(["created_date", "status"]).size().rename("jobs").reset_index()
        return counted.rename(columns={"created_date": "day"}).astype({"jobs": "int64"})

    def failures_by_name(self) -> tuple[pd.DataFrame, int]:
        jobs = self.in_period.assign(failed=self.in_period["status"] == "Failed",
                                     first=self.in_period["created_date"] < self.period.half_day)
        jobs = jobs.assign(failed_first=jobs["failed"] & jobs["first"])
        by_name = jobs.groupby("name").agg(jobs=("id", "size"), failed=("failed", "sum"),
                                           jobs_first_half=("first", "sum"),
                                           failed_first_half=("failed_first", "sum")).reset_index()
        by_name = by_name[by_name["failed"] > 0]
        by_name = by_name.assign(rate=by_name["failed"] / by_name["jobs"]).sort_values(
            ["rate", "failed", "name"], ascending=[False, False, True])
        return _top(by_name.drop(columns="rate"), TOP_NAMES)

    def failures_by_day(self) -> pd.DataFrame:
        jobs = self.in_period.assign(failed=self.in_period["status"] == "Failed",
                                     backup=self.in_period["name"].isin(BACKUP_TASK_NAMES))
        jobs = jobs.assign(failed_backup=jobs["failed"] & jobs["backup"])
        return jobs.groupby("created_date").agg(jobs=("id", "size"), failed=("failed", "sum"),
                                                backups=("backup", "sum"),
                                                failed_backups=("failed_backup", "sum")).reset_index().rename(
            columns={"created_date": "day"})

    def as_of(self) -> datetime:
        """When the report measures the age of the last backups: NOW, or the end of the period when it is over."""
        return min(self.now, datetime.combine(self.period.last_day + timedelta(days=1), time(), tzinfo=timezone.utc))

    def backup_freshness(self) -> tuple[pd.DataFrame, int]:
        """Every instance with a job in the period, its last Completed backup's end: those without one first (0),
        then those without one within 24 h (1), then the others (2), the oldest last backup first."""
        jobs = self.in_period
        done = jobs[jobs["name"].isin(BACKUP_TASK_NAMES) & (jobs["status"] == "Completed")]
        last = done.assign(at=done["ended_at"].fillna(done["created_at"])).groupby(
            ["project_id", "instance_id"])["at"].max().rename("last_backup_at")
        backups = jobs.assign(backup=jobs["name"].isin(BACKUP_TASK_NAMES),
                              failed=jobs["name"].isin(BACKUP_TASK_NAMES) & (jobs["status"] == "Failed"))
        table = backups.groupby(["project_id", "instance_id"]).agg(
            instance_name=("instance_name", "max"), backups=("backup", "sum"), failed=("failed", "sum"))
        table = table.join(last).reset_index()
        day_ago = pd.Timestamp(self.as_of() - BACKUP_DUE)
        table["freshness"] = [0 if pd.isna(at) else 1 if at < day_ago else 2 for at in table["last_backup_at"]]
        table = table.sort_values(["freshness", "last_backup_at", "project_id", "instance_id"])
        return _top(table, LISTED_INSTANCES)

    def durations_by_name(self) -> tuple[pd.DataFrame, int]:
        done = self.in_period[(self.in_period["status"] == "Completed") & self.in_period["duration_seconds"].notna()]
        rows = [(name, len(group), _nearest_rank(group, 50), _nearest_rank(group, 90))
                for name, group in done.groupby("name")["duration_seconds"]]
        table = pd.DataFrame(rows, columns=["name", "completed_jobs", "p50_seconds", "p90_seconds"])
        return _top(table.sort_values(["p90_seconds", "name"], ascending=[False, True]), TOP_NAMES)

    def backups(self) -> pd.DataFrame:
        return self.in_period[self.in_period["name"].isin(BACKUP_TASK_NAMES)]

    def backups_by_instance(self) -> tuple[pd.DataFrame, int]:
        backups = self.backups()
        table = backups.assign(completed=backups["status"] == "Completed", failed=backups["status"] == "Failed")
        table = table.groupby(["project_id", "instance_id"]).agg(
            instance_name=("instance_name", "max"), backups=("id", "size"), completed=("completed", "sum"),
            failed=("failed", "sum")).reset_index()
        table = table.sort_values(["failed", "backups", "project_id", "instance_id"],
                                  ascending=[False, False, True, True])
        return _top(table, TOP_INSTANCES)

    def failed_backups(self) -> tuple[pd.DataFrame, int]:
        failed = self.backups()[self.backups()["status"] == "Failed"]
        failed = failed.sort_values(["created_at", "project_id", "id"], ascending=[False, True, True])
        return _top(failed[["project_id", "instance_id", "instance_name", "name", "created_at", "fail_reason"]],
                    LISTED_ROWS)

    def running(self) -> tuple[pd.DataFrame, int]:
        running = self.scoped[(self.scoped["status"] == "Running")
                              & (self.scoped["created_date"] <= self.period.last_day)]
        running = running.sort_values(["created_at", "project_id", "id"])
        return _top(running[["project_id", "id", "name", "instance_name", "progress_pct", "created_at",
                             "last_seen_at"]], LISTED_ROWS)

    def running_by_age(self) -> dict[str, int]:
        running = self.scoped[(self.scoped["status"] == "Running")
                              & (self.scoped["created_date"] <= self.period.last_day)]
        ages = pd.Timestamp(self.now) - running["created_at"]
        lower = [band[2] for band in AGE_BANDS]
        upper = lower[1:] + [timedelta(days=100_000)]
        return {label: int(((ages >= low) & (ages < high)).sum())
                for (_, label, _), low, high in zip(AGE_BANDS, lower, upper)}


def _nearest_rank(values: pd.Series, percent: int) -> float:
    return float(np.percentile(values.to_numpy(), percent, method="inverted_cdf"))


def _top(table: pd.DataFrame, top: int) -> tuple[pd.DataFrame, int]:
    return table.head(top).reset_index(drop=True), len(table)


# --- The sync ledger ----------------------------------------------------------------------------------------

SYNCED, FAILED, ATTEMPTED = "synced", "failed", "attempted"


def write_ledger(warehouse: Warehouse, days: dict[tuple[str, date], str]) -> None:
    """A ledger row per (project, day): SYNCED (complete), FAILED (the last attempt failed) or ATTEMPTED (tried
    without error and without completing it, e.g. before the day was over)."""
    warehouse.ensure_schema()
    attempt = datetime(2026, 12, 1, 0, 15, tzinfo=timezone.utc)
    rows = [{"project_id": project, "created_date": day, "region": None, "last_attempt_at": attempt,
             "last_complete_at": attempt if kind == SYNCED else None, "jobs": 1 if kind == SYNCED else None,
             "last_error": "HTTP 503 from the DDS API" if kind == FAILED else None, "run_id": "run-1"}
            for (project, day), kind in days.items()]
    with warehouse.engine.begin() as connection:
        connection.execute(sa.insert(SYNC_LEDGER), rows)


# --- Writing a report ------------------------------------------------------------------------------------------

SCOPE = ReportScope(None, "all projects", ("p1", "p2"), date(2026, 10, 1))


def report_html(url: str, tmp_path: Path, jobs=None, period: ReportPeriod = PERIOD, ledger: bool = True,
                today_in_progress: bool = False) -> str:
    """The HTML of the report over ``period`` for SCOPE, from a warehouse at ``url`` loaded with ``jobs`` (default:
    known_jobs()) and, with ``ledger``, the sync ledger of November's days (11-12 failed, the others synced), and
    with ``today_in_progress`` a row of 11-30 (NOW's day) attempted, as an intraday sync leaves it."""
    warehouse = load(url, known_jobs() if jobs is None else jobs)
    if ledger:
        write_ledger(warehouse, {(p, date(2026, 11, d)): "failed" if d == 12 else "synced"
                                 for p in ("p1", "p2") for d in range(1, 30)})
    if today_in_progress:
        write_ledger(warehouse, {(p, NOW.date()): ATTEMPTED for p in ("p1", "p2")})
    written = write_report(warehouse, period, SCOPE, str(tmp_path / "report.html"), NOW)
    warehouse.dispose()
    return Path(written.location).read_text(encoding="utf-8")


# --- Reading a report ------------------------------------------------------------------------------------------

class ReportPage(HTMLParser):
    """A report's tables (by id: rows of cell texts), its images' sources, the ids present and every URL-valued
    attribute, read with the standard library's HTML parser."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.references: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.add(tag)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        self.references += [value or "" for name, value in attrs if name in ("src", "href", "srcset", "action")]
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag == "table":
            self._table = attributes.get("id", f"table-{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def body(self, table: str) -> list[list[str]]:
        """The rows of a table after its header row."""
        return self.tables[table][1:]


def decoded_chart(source: str) -> ElementTree.Element:
    """An image source of the report decoded and parsed as the SVG document it must be."""
    prefix = "data:image/svg+xml;base64,"
    assert source.startswith(prefix), source[:60]
    root = ElementTree.fromstring(base64.b64decode(source[len(prefix):], validate=True))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root
