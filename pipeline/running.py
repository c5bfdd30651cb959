"""The final state of the jobs that were Running at an earlier sync, whatever day they were created on.

An intraday run syncs today whole; a job of an earlier day that was Running when last seen (a backup created at
23:50 that fails at 00:30) is outside that window. Each such job is looked up again at every intraday run, in the
cheaper of two ways per day, decided from what the warehouse holds before any request:

- by id: one request per job (``id`` filter, a one-second window at its ``created_at``): a request per job;
- a window over the day from its first to its last Running job: ``ceil(stored jobs in that span / page size)``
  requests, whatever the number of Running jobs in it (a day of many stuck jobs costs its pages, not a request each).

A job the API no longer shows (older than its retention) keeps what is stored. What comes back is upserted in one
transaction, by the same latest-state rule as a day's sync; the sync ledger is not touched, as no day is fetched
whole here.
"""

import math
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import pandas as pd

from pipeline.api.client import DdsTaskCenterClient, FetchStats
from pipeline.api.errors import DdsApiError
from pipeline.api.windows import TimeWindow
from pipeline.records.normalize import normalize_jobs
from pipeline.api.windows import retained_since
from pipeline.warehouse.store import Warehouse

RUNNING = "Running"
# The API's created_at has whole seconds and its end_time is inclusive: [created_at, +1 s] holds the job.
_ONE_SECOND = timedelta(seconds=1)

_RUNNING_JOBS_SQL = """
SELECT id, created_at, created_date FROM dds_jobs
WHERE project_id = :project_id AND status = 'Running' AND created_at >= :since
ORDER BY created_at, id
"""
_JOBS_IN_SPAN_SQL = """
SELECT COUNT(*) AS n FROM dds_jobs WHERE project_id = :project_id AND created_at >= :start AND created_at <= :end
"""


@dataclass(frozen=True)
class Lookup:
    """One way of asking for some Running jobs of one day: by ``job_ids`` (a request each), or the ``window``."""

    day: date
    window: TimeWindow
    job_ids: tuple[str, ...] = ()
    requests: int = 1


@dataclass
class RunningRefresh:
    """What a refresh did: the Running jobs it asked about, the ones that have ended since, the days whose rows it
    wrote (each day's Parquet snapshot is then out of date), and the fetch's figures."""

    asked: int = 0
    ended: int = 0
    days: list[date] = field(default_factory=list)
    lookups: list[Lookup] = field(default_factory=list)
    stats: FetchStats = field(default_factory=FetchStats)

    def metadata(self) -> dict[str, object]:
        """The refresh's figures for the run summary: the requests are beyond the sync's ``fetch_requests``."""
        return {"running_looked_up": self.asked, "running_ended": self.ended,
                "running_requests": self.stats.requests, "running_days_rewritten": len(self.days)}

    def summary_line(self) -> str:
        by_id = sum(1 for lookup in self.lookups if lookup.job_ids)
        return (f"{self.asked} job(s) Running at an earlier sync looked up again ({by_id} by id, "
                f"{len(self.lookups) - by_id} day window(s)) in {self.stats.requests} request(s): {self.ended} "
                "ended since; "
                f"days rewritten: {', '.join(d.isoformat() for d in self.days) or 'none'}")


def plan_lookups(running: pd.DataFrame, jobs_in_span, page_size: int) -> list[Lookup]:
    """The lookups of ``running`` (id, created_at as UTC datetimes, created_date), per day the cheaper way;
    ``jobs_in_span(start, end)``: the stored jobs created in [start, end]."""
    lookups = []
    for day, jobs in running.groupby("created_date", sort=True):
        start, end = jobs["created_at"].min().to_pydatetime(), jobs["created_at"].max().to_pydatetime() + _ONE_SECOND
        window_pages = max(1, math.ceil(jobs_in_span(start, end) / page_size))
        if window_pages < len(jobs):
            lookups.append(Lookup(day, TimeWindow(start, end), requests=window_pages))
            continue
        for job_id, created in zip(jobs["id"], jobs["created_at"]):
            moment = created.to_pydatetime()
            lookups.append(Lookup(day, TimeWindow(moment, moment + _ONE_SECOND), job_ids=(job_id,)))
    return lookups


def running_before(warehouse: Warehouse, project_id: str, now: datetime, skip_days: Sequence[date]) -> pd.DataFrame:
    """The stored jobs of ``project_id`` Running at their latest sync, created since the API's retention at ``now``,
    outside ``skip_days`` (a run fetches those whole)."""
    found = warehouse.query(_RUNNING_JOBS_SQL, project_id=project_id, since=retained_since(now))
    found["created_at"] = pd.to_datetime(found["created_at"], utc=True)
    found["created_date"] = found["created_at"].dt.date
    return found[~found["created_date"].isin(set(skip_days))].reset_index(drop=True)


def refresh_running(
    client: DdsTaskCenterClient,
    warehouse: Warehouse,
    now: datetime,
    skip_days: Sequence[date],
    region: str | None = None,
) -> RunningRefresh:
    """Look up again, at the API, the jobs Running at an earlier sync (outside ``skip_days``) and store their
    state as of ``now``; an answer naming a job not asked for is an error (nothing is then stored)."""
    refresh = RunningRefresh()
    running = running_before(warehouse, client.project_id, now, skip_days)
    if running.empty:
        return refresh
    refresh.asked = len(running)

    def jobs_in_span(start: datetime, end: datetime) -> int:
        counted = warehouse.query(_JOBS_IN_SPAN_SQL, project_id=client.project_id, start=start, end=end)
        return int(counted["n"].iloc[0])

    refresh.lookups = plan_lookups(running, jobs_in_span, client.page_size)
    records: list[dict] = []
    for lookup in refresh.lookups:
        job_id = lookup.job_ids[0] if lookup.job_ids else None
        with closing(client.iter_pages(lookup.window, job_id=job_id, stats=refresh.stats)) as pages:
            found = [job for page in pages for job in page.jobs]
        if job_id is not None and any(isinstance(job, dict) and job.get("id") != job_id for job in found):
            raise DdsApiError(f"the DDS API answered a lookup of job {job_id} with other jobs: not stored")
        records.extend(found)
    if not records:
        return refresh
    normalized = normalize_jobs(records, client.project_id, seen_at=now.astimezone(timezone.utc), region=region)
    frame = normalized.frame
    asked_ids = set(running["id"])
    refresh.ended = frame.loc[(frame["status"] != RUNNING) & frame["id"].isin(asked_ids), "id"].nunique()
    warehouse.upsert(frame, normalized.unknown)
    refresh.days = sorted(set(frame["created_date"]))
    return refresh
