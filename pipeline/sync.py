"""One sync: the jobs created on a run of UTC days, from the DDS API into the warehouse.

This is the work behind the ``dds_jobs`` asset, kept free of Dagster so it can be called and tested alone.
A *day* is a UTC calendar day of ``created_at``: the partition key. The API only answers for about the last
month, so each day is first classed by how much of it the source still holds (its *coverage*): days it no
longer holds are not fetched, and nothing stored for them is touched.
"""

from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.api.client import DdsTaskCenterClient, FetchStats, Page
from pipeline.api.pagination import job_key
from pipeline.api.windows import TimeWindow
from pipeline.storage.normalize import MAX_SAMPLES, NormalizedJobs, normalize_jobs
from pipeline.storage.parquet import ParquetStore
from pipeline.storage.parquet_heal import DayRefresh, refresh_days
from pipeline.storage.precedence import latest_state_per_key
from pipeline.storage.warehouse import Warehouse

# The provider answers for "within one month"; 30 days is what it reliably holds.
API_RETENTION = timedelta(days=30)
# Stay clear of the retention edge: a window starting exactly at it may be refused or half-answered.
RETENTION_MARGIN = timedelta(minutes=10)

FULL, PARTIAL, GONE = "full", "partial", "gone"
# Records normalized at a time while a window is fetched: bounds the memory of the API's dicts (~800 bytes each).
NORMALIZE_BATCH = 20_000
# Text columns whose values repeat on every page: task names, instances, statuses, failure messages.
REPEATING_TEXT_COLUMNS = ("name", "instance_id", "instance_name", "status", "fail_reason")
# Stored rows read back and written to Parquet at a time (whole days): bounds the memory of a long backfill.
ROWS_AT_ONCE = 20_000


def day_window(day: date) -> TimeWindow:
    """The half-open UTC window [day 00:00, next day 00:00) of a partition."""
    return TimeWindow.for_days(day, day)


def retained_since(now: datetime) -> datetime:
    """The earliest ``created_at`` the API can still be asked about at ``now``."""
    return now - API_RETENTION + RETENTION_MARGIN


def coverage(day: date, now: datetime) -> str:
    """How much of a day's jobs the source still holds: ``full``, ``partial`` (retention cuts the day) or ``gone``."""
    window = day_window(day)
    since = retained_since(now)
    if window.end <= since:
        return GONE
    return FULL if window.start >= since else PARTIAL


@dataclass
class DaySync:
    """What one sync did for one UTC day: what the API returned for it and what the warehouse now holds."""

    day: date
    coverage: str
    api_jobs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    anomalies: int = 0
    stored_jobs: int = 0

    def metadata(self) -> dict[str, object]:
        """Plain numbers and text for Dagster's per-partition materialization metadata."""
        statuses = {f"status_{name.lower()}": count for name, count in sorted(self.by_status.items())}
        return {
            "day": self.day.isoformat(),
            "source_coverage": self.coverage,
            "source_holds_day": self.coverage != GONE,
            "jobs": self.api_jobs,
            "failed": self.by_status.get("Failed", 0),
            "running": self.by_status.get("Running", 0),
            "anomalies": self.anomalies,
            "stored_jobs": self.stored_jobs,
            **statuses,
        }


@dataclass
class SyncResult:
    """The outcome of one sync over a run of days."""

    days: dict[date, DaySync]
    window: TimeWindow | None
    stats: FetchStats | None
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    seconds: float = 0.0
    # One line per kind of problem met in the records (rejections, unreadable fields), for the run log.
    problems: list[str] = field(default_factory=list)

    @property
    def gone_days(self) -> list[date]:
        return [d for d, s in self.days.items() if s.coverage == GONE]

    def metadata(self) -> dict[str, object]:
        """Run-level figures, shared by every day's materialization."""
        fetch = self.stats.as_metadata() if self.stats else {}
        return {
            "window_start": self.window.start.isoformat() if self.window else "",
            "window_end": self.window.end.isoformat() if self.window else "",
            "inserted": self.inserted,
            "updated": self.updated,
            "rejected": self.rejected,
            "sync_seconds": round(self.seconds, 3),
            **{f"fetch_{k}": v for k, v in fetch.items()},
        }


ProgressHook = Callable[[Page, FetchStats], None]


def fetch_window(days: Sequence[date], now: datetime) -> TimeWindow | None:
    """The part of the days' span the API still answers for, or None when it holds none of it."""
    start = max(day_window(days[0]).start, retained_since(now))
    end = min(day_window(days[-1]).end, now)
    return TimeWindow(start, end) if end > start else None


def sync_days(
    client: DdsTaskCenterClient,
    warehouse: Warehouse,
    days: Sequence[date],
    *,
    now: datetime | None = None,
    region: str | None = None,
    on_page: ProgressHook | None = None,
) -> SyncResult:
    """Fetch the jobs created on ``days`` (consecutive UTC days) and upsert them in one transaction.

    Jobs the API returns outside the days (its window is inclusive at the end) are left to their own
    partition. Days the API no longer holds are reported, never fetched, and their stored rows are untouched.
    """
    if not days:
        raise ValueError("sync_days needs at least one day")
    days = sorted(days)
    now = now or datetime.now(timezone.utc)
    started = datetime.now(timezone.utc)
    result = SyncResult({d: DaySync(d, coverage(d, now)) for d in days}, fetch_window(days, now), None)
    if result.window is not None:
        result.stats = FetchStats()
        normalized = _fetch_normalized(client, result.window, result.stats, now, region, on_page)
        result.rejected = len(normalized.rejected)
        result.problems = list(normalized.anomaly_samples)
        frame = _only_days(normalized.frame, days)
        _count_per_day(result, frame)
        counts = warehouse.upsert(frame)
        result.inserted, result.updated = counts.inserted, counts.updated
    for day, stored in warehouse.count_by_day(days, project_id=client.project_id).items():
        result.days[day].stored_jobs = stored
    result.seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return result


def _fetch_normalized(
    client: DdsTaskCenterClient,
    window: TimeWindow,
    stats: FetchStats,
    now: datetime,
    region: str | None,
    on_page: ProgressHook | None,
) -> NormalizedJobs:
    """The window's jobs as rows, normalized every NORMALIZE_BATCH records while the pages arrive.

    A month of a busy project held as the API's dicts until the last page took more memory than all the rest of
    a run; normalized rows take a third of it. A job met in two pages (offsets shift while jobs are created)
    keeps its latest state, by the same rule as the client's fetch_jobs.
    """
    batches: list[NormalizedJobs] = []
    pending: list[dict] = []

    def normalize_pending(kept_while_fetching: bool = True) -> None:
        normalized = normalize_jobs(pending, client.project_id, seen_at=now, region=region)
        pending.clear()
        # The last batch is not held while more pages arrive: its strings need no sharing.
        batches.append(replace(normalized, frame=_sharing_repeated_text(normalized.frame))
                       if kept_while_fetching else normalized)

    with closing(client.iter_pages(window, stats=stats)) as pages:
        for page in pages:
            pending.extend(page.jobs)
            if on_page is not None:
                on_page(page, stats)
            if len(pending) >= NORMALIZE_BATCH:
                normalize_pending()
    if pending or not batches:
        normalize_pending(kept_while_fetching=False)
    frame = batches[0].frame if len(batches) == 1 else pd.concat([b.frame for b in batches], ignore_index=True)
    # A record met twice (a slice paged again) is rejected once, as the client's fetch_jobs keeps it once.
    rejected = list({job_key(record): record for b in batches for record in b.rejected}.values())
    frame = latest_state_per_key(frame)
    stats.jobs = len(frame) + len(rejected)
    return NormalizedJobs(
        frame=frame,
        anomalies=sum(b.anomalies for b in batches),
        rejected=rejected,
        anomaly_samples=[line for b in batches for line in b.anomaly_samples][:MAX_SAMPLES],
    )


def _sharing_repeated_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with one string object per distinct value in the columns whose values repeat on every page: the
    rows kept from a batch then hold no copy of them per row, and the API's strings are freed with its dicts."""
    columns = {name: frame[name] for name in frame.columns}
    for name in REPEATING_TEXT_COLUMNS:
        codes, distinct = pd.factorize(columns[name].to_numpy())
        # Missing values are coded -1: the None appended last is what they pick (also when all are missing).
        lookup = np.append(np.asarray(distinct, dtype=object), None)
        columns[name] = pd.Series(lookup[codes], dtype=object)
    # A new frame rather than columns replaced in place: the frame's block of text columns would keep every row's
    # own string alive.
    return pd.DataFrame(columns)


def _only_days(frame: pd.DataFrame, days: Sequence[date]) -> pd.DataFrame:
    # Compared as Arrow dates, never as a Python date per row (which took 40 ms per 30,000 rows).
    wanted = pa.array(list(days), pa.date32())
    keep = pc.is_in(pa.array(frame["created_date"]), value_set=wanted).to_numpy(zero_copy_only=False)
    return frame if keep.all() else frame.loc[keep]


def _count_per_day(result: SyncResult, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    for (day, status), count in frame.groupby(["created_date", "status"], observed=True).size().items():
        result.days[day].by_status[str(status)] = int(count)
    for day, day_sync in result.days.items():
        day_sync.api_jobs = sum(day_sync.by_status.values())
    if "raw_record" in frame.columns:
        for day, count in frame["raw_record"].notna().groupby(frame["created_date"], observed=True).sum().items():
            result.days[day].anomalies = int(count)


def snapshot_days(warehouse: Warehouse, store: ParquetStore, days: Sequence[date]) -> dict[date, DayRefresh]:
    """Write the warehouse's latest state of ``days`` to the Parquet snapshots, healing each day whose files are
    unreadable or disagree with the warehouse (pipeline/storage/parquet_heal.py); what was done per day.

    A day the warehouse holds no job of is looked at only when it has files (to heal an unreadable one).
    """
    counts = warehouse.count_by_day(days)
    looked_at = [day for day, count in counts.items() if count or store.has_files(day)]
    done: dict[date, DayRefresh] = {}
    for batch in warehouse.day_batches(looked_at, ROWS_AT_ONCE):
        # As Arrow from end to end: the rows go from the database's values to Parquet without pandas objects.
        done.update(refresh_days(store, batch, warehouse.read_days_table))
    return {day: done.get(day, DayRefresh(day)) for day in days}
