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
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from pipeline.api.client import DdsTaskCenterClient, FetchStats, Page
from pipeline.api.pagination import job_key
from pipeline.api.windows import FULL, GONE, TimeWindow, day_window, held_by_api, retained_since
from pipeline.records.normalize import (
    MAX_SAMPLES,
    NormalizedJobs,
    normalize_jobs,
    unknown_counts,
)
from pipeline.records.precedence import FIELD_BITS, latest_states
from pipeline.snapshots.heal import DayRefresh, refresh_days
from pipeline.snapshots.store import ROWS_AT_ONCE, ParquetStore
from pipeline.warehouse.ledger import (
    Attempt,
    error_line,
    record_failure,
    record_snapshot_failure,
    record_snapshot_written,
    record_sync,
)
from pipeline.warehouse.store import Warehouse

# Why a day left without jobs by a sync is emptied (snapshot_days).
MOVED_OUT = "every job of the day moved to another day (the API now gives another created_at)"
# Records normalized at a time while a window is fetched: bounds the memory of the API's dicts (~800 bytes each).
NORMALIZE_BATCH = 20_000
# Text columns whose values repeat on every page: task names, instances, statuses, failure messages.
REPEATING_TEXT_COLUMNS = ("name", "instance_id", "instance_name", "status", "fail_reason")


@dataclass
class DaySync:
    """What one sync did for one UTC day: what the API returned for it and what the warehouse now holds.

    ``anomalies``: jobs whose record was kept raw (a field unreadable, missing, or unknown to us);
    ``unknown_fields``: fields the day's records did not give (missing, null, not a string or unreadable), each
    of which kept its stored value. ``api_jobs`` counts every job, whatever its fields; ``by_status`` the jobs of
    each status sent, and ``missing_status`` those sent without one (null, missing or not a string)."""

    day: date
    coverage: str
    api_jobs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    anomalies: int = 0
    unknown_fields: int = 0
    stored_jobs: int = 0
    missing_status: int = 0

    def metadata(self) -> dict[str, object]:
        """The day's own figures, for its partition's materialization (Dagster plots them over the days)."""
        statuses = {f"status_{name.lower()}": count for name, count in sorted(self.by_status.items())}
        return {
            "day": self.day.isoformat(),
            "source_coverage": self.coverage,
            "source_holds_day": self.coverage != GONE,
            "jobs": self.api_jobs,
            "failed": self.by_status.get("Failed", 0),
            "running": self.by_status.get("Running", 0),
            "anomalies": self.anomalies,
            "unknown_fields": self.unknown_fields,
            "stored_jobs": self.stored_jobs,
            "missing_status": self.missing_status,
            **statuses,
        }


@dataclass
class SyncResult:
    """The outcome of one sync over a run of days.

    ``unknown_fields``: per API field, the records of the days that did not give it (the stored value was kept).
    ``finished_changed``: stored finished jobs (Completed, Failed) whose finished state a complete record changed,
    and ``finished_sample`` one of them, for the run log. ``text_escaped``: text values stored with their NULs
    escaped (pipeline/records/escape.py). ``moved_out_of``: days whose stored jobs the API now says were created on
    another day (the synced days among them); their Parquet snapshots hold stale copies until snapshot_days is
    given them."""

    days: dict[date, DaySync]
    window: TimeWindow | None
    stats: FetchStats | None
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    seconds: float = 0.0
    # One line per kind of problem met in the records (rejections, unreadable fields), for the run log.
    problems: list[str] = field(default_factory=list)
    unknown_fields: dict[str, int] = field(default_factory=dict)
    finished_changed: int = 0
    finished_sample: str = ""
    text_escaped: int = 0
    moved_out_of: list[date] = field(default_factory=list)

    @property
    def gone_days(self) -> list[date]:
        return [d for d, s in self.days.items() if s.coverage == GONE]

    def metadata(self) -> dict[str, object]:
        """Run-wide figures: the run summary, given once per run (never on each day's partition, where Dagster
        would plot them as if each day had them). What happens per day is in ``DaySync.metadata``."""
        fetch = self.stats.as_metadata() if self.stats else {}
        retries = {kind.removeprefix("retries_"): count for kind, count in fetch.items()
                   if kind.startswith("retries_") and count}
        summary: dict[str, object] = {
            "days": len(self.days),
            "window_start": self.window.start.isoformat() if self.window else "",
            "window_end": self.window.end.isoformat() if self.window else "",
            "inserted": self.inserted,
            "updated": self.updated,
            "rejected": self.rejected,
            **{f"unknown_{name}": count for name, count in sorted(self.unknown_fields.items())},
            "finished_changed": self.finished_changed,
            "text_escaped": self.text_escaped,
            "sync_seconds": round(self.seconds, 3),
            **{f"fetch_{name}": fetch[name] for name in ("slices", "pages", "requests", "jobs", "seconds", "rate_per_s",
                                                          "concurrency_min", "concurrency_max") if name in fetch},
        }
        # Usually none: listed only when there are some, so that no always-zero series is recorded.
        for name in ("refetches", "throttled", "rate_allowed"):
            if fetch.get(name):
                summary[f"fetch_{name}"] = fetch[name]
        if retries:
            summary["fetch_retries"] = sum(retries.values())
            summary["fetch_retries_by_kind"] = dict(sorted(retries.items()))
        return summary

    def summary_line(self) -> str:
        """The run summary as one line for the run's log."""
        line = (f"{sum(s.api_jobs for s in self.days.values()):,} jobs over {len(self.days)} day(s): "
                f"{self.inserted:,} new, {self.updated:,} updated, {self.rejected} rejected, {self.seconds:.1f}s")
        if self.stats is None:
            return line + "; nothing fetched (the API no longer holds these days)"
        retried = sum(self.stats.retries.values())
        return (line + f"; {self.stats.requests} requests for {self.stats.pages} pages in {self.stats.slices} "
                "slice(s)" + (f", {retried} of them retries" if retried else "") + f"; {self.stats.pace_line()}")


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
    run_id: str | None = None,
) -> SyncResult:
    """Fetch the jobs created on ``days`` (consecutive UTC days) and upsert them in one transaction.

    Jobs the API returns outside the days (its window is inclusive at the end) are left to their own
    partition. Days the API no longer holds are reported, never fetched, and their stored rows are untouched.
    The sync ledger (pipeline/warehouse/ledger.py) records every day of the sync (of ``run_id``, the Dagster run): the days
    fetched whole as synced, in the load's transaction; all of them as failed, with the error, when the sync
    raises (the error is then raised on).
    """
    if not days:
        raise ValueError("sync_days needs at least one day")
    now = now or datetime.now(timezone.utc)
    attempt = Attempt(client.project_id, now, region, run_id)
    try:
        return _sync_recorded(client, warehouse, sorted(days), now, attempt, on_page)
    except Exception as error:
        _record_failure(warehouse, error, lambda connection: record_failure(connection, attempt, days, error))
        raise


def _sync_recorded(
    client: DdsTaskCenterClient,
    warehouse: Warehouse,
    days: Sequence[date],
    now: datetime,
    attempt: Attempt,
    on_page: ProgressHook | None,
) -> SyncResult:
    """sync_days of sorted ``days``, recording a sync that succeeds in the ledger (in the load's transaction)."""
    region = attempt.region
    started = datetime.now(timezone.utc)
    result = SyncResult({d: DaySync(d, held_by_api(d, now)) for d in days}, fetch_window(days, now), None)
    if result.window is not None:
        result.stats = FetchStats()
        normalized = _fetch_normalized(client, result.window, result.stats, now, region, on_page)
        result.rejected = len(normalized.rejected)
        result.problems = list(normalized.anomaly_samples)
        result.text_escaped = normalized.text_escaped
        frame, unknown = normalized.frame, normalized.unknown_mask()
        in_days = _in_days(frame, days)
        if not in_days.all():
            frame, unknown = frame.loc[in_days].reset_index(drop=True), unknown[in_days]
        _count_unknown_per_day(result, frame, unknown)
        # The one reduction of the batch (the warehouse is given it as it is): a job met twice (pages overlapped)
        # becomes one row, and the days' counts are of those rows.
        frame, unknown = latest_states(frame, unknown)
        _count_per_day(result, frame, unknown)
        counts = warehouse.upsert_latest(frame, unknown, then=partial(record_sync, attempt=attempt,
                                                                      jobs_by_day=_ledger_jobs(result, now)))
        result.inserted, result.updated = counts.inserted, counts.updated
        result.finished_changed, result.finished_sample = counts.finished_changed, counts.finished_sample
        result.moved_out_of = sorted(counts.moved_out_of)
    else:
        with warehouse.transaction() as connection:
            record_sync(connection, attempt, _ledger_jobs(result, now))
    for day, stored in warehouse.count_by_day(days, project_id=client.project_id).items():
        result.days[day].stored_jobs = stored
    result.seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return result


def _ledger_jobs(result: SyncResult, now: datetime) -> dict[date, int | None]:
    """Each day's entry in the sync ledger: the jobs of a day fetched whole (the API holds all of it and it is
    over); None for the others, which a sync can never complete (a day cut by the retention edge is one)."""
    return {day: s.api_jobs if s.coverage == FULL and day_window(day).end <= now else None
            for day, s in result.days.items()}


def _record_failure(warehouse: Warehouse, error: Exception, record: Callable[[sa.Connection], None]) -> None:
    """Record a failure in the ledger (``record`` of a connection) in a transaction of its own; if that fails too,
    the failure's own ``error`` still wins."""
    try:
        with warehouse.transaction() as connection:
            record(connection)
    except Exception as ledger_error:  # noqa: BLE001 - noted on the error being raised
        error.add_note(f"the sync ledger could not record this failure: {error_line(ledger_error)}")


def _fetch_normalized(
    client: DdsTaskCenterClient,
    window: TimeWindow,
    stats: FetchStats,
    now: datetime,
    region: str | None,
    on_page: ProgressHook | None,
) -> NormalizedJobs:
    """The window's records as rows (a job met in two pages twice), normalized every NORMALIZE_BATCH records
    while the pages arrive; ``stats.jobs`` counts the distinct jobs.

    A month of a busy project held as the API's dicts until the last page took more memory than all the rest of
    a run; normalized rows take a third of it.
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
    if len(batches) == 1:
        frame, unknown = batches[0].frame, batches[0].unknown
    else:
        frame = pd.concat([b.frame for b in batches], ignore_index=True)
        unknown = None if all(b.unknown is None for b in batches) else np.concatenate(
            [b.unknown_mask() for b in batches])
    # A record met twice (a slice paged again) is rejected once, as the client's fetch_jobs keeps it once.
    rejected = list({job_key(record): record for b in batches for record in b.rejected}.values())
    stats.jobs = len(set(frame["id"].tolist())) + len(rejected)  # every row is of the client's project
    return NormalizedJobs(
        frame=frame,
        anomalies=sum(b.anomalies for b in batches),
        text_escaped=sum(b.text_escaped for b in batches),
        rejected=rejected,
        anomaly_samples=[line for b in batches for line in b.anomaly_samples][:MAX_SAMPLES],
        unknown=unknown,
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


def _in_days(frame: pd.DataFrame, days: Sequence[date]) -> np.ndarray:
    """Which rows of ``frame`` were created on ``days``."""
    # Compared as Arrow dates, never as a Python date per row (which took 40 ms per 30,000 rows).
    wanted = pa.array(list(days), pa.date32())
    return pc.is_in(pa.array(frame["created_date"]), value_set=wanted).to_numpy(zero_copy_only=False)


def _count_unknown_per_day(result: SyncResult, frame: pd.DataFrame, unknown: np.ndarray) -> None:
    """The fields the days' records did not give, per day and per field (every record, before reduction)."""
    result.unknown_fields = unknown_counts(unknown)
    if not result.unknown_fields:
        return
    fields = sum(((unknown & bit) != 0).astype(np.int64) for bit in FIELD_BITS.values())
    for day, count in pd.Series(fields).groupby(frame["created_date"].to_numpy()).sum().items():
        result.days[day].unknown_fields = int(count)


def _count_per_day(result: SyncResult, frame: pd.DataFrame, unknown: np.ndarray) -> None:
    """Each day's jobs (one row each: the frame is reduced), per status sent; ``unknown``: the rows' masks."""
    if frame.empty:
        return
    # Every job counts, whatever its fields: grouping by status alone would leave out the jobs sent without one.
    days = frame["created_date"]
    for day, count in days.value_counts().items():
        result.days[day].api_jobs = int(count)
    without_status = (unknown & FIELD_BITS["status"]) != 0
    for day, count in days[without_status].value_counts().items():
        result.days[day].missing_status = int(count)
    sent = frame.loc[~without_status, ["created_date", "status"]] if without_status.any() else frame
    for (day, status), count in sent.groupby(["created_date", "status"], observed=True).size().items():
        result.days[day].by_status[str(status)] = int(count)
    if "raw_record" in frame.columns:
        for day, count in frame["raw_record"].notna().groupby(frame["created_date"], observed=True).sum().items():
            result.days[day].anomalies = int(count)


class SnapshotsPending(Exception):
    """Why stored days have no Parquet snapshot yet (the ledger's snapshot_error for them)."""


def record_snapshots_pending(warehouse: Warehouse, days: Sequence[date], why: str) -> None:
    """Record in the sync ledger that the Parquet snapshots of the stored ``days`` were not written (``why``): the
    days are due again, as after a failed snapshot, until snapshot_days writes them."""
    if days:
        with warehouse.transaction() as connection:
            record_snapshot_failure(connection, days, SnapshotsPending(why))


def snapshot_days(
    warehouse: Warehouse, store: ParquetStore, days: Sequence[date], moved_out_of: Sequence[date] = ()
) -> dict[date, DayRefresh]:
    """Write the warehouse's latest state of ``days`` to the Parquet snapshots, healing each day whose files are
    unreadable or disagree with the warehouse (pipeline/snapshots/heal.py); what was done per day.

    A day the warehouse holds no job of is looked at only when it has files (to heal an unreadable one), and is
    never emptied, unless it is one of ``moved_out_of`` (SyncResult.moved_out_of: a sync moved its jobs to other
    days), which are refreshed too: such a day left without jobs is emptied, its files kept in the quarantine. The
    sync ledger records the outcome: a failure (then raised on) makes the daily run ask for the days again, until a
    snapshot of them is written.
    """
    wanted = sorted(set(days).union(moved_out_of))
    try:
        done = _snapshot_days(warehouse, store, wanted, moved_out_of)
    except Exception as error:
        _record_failure(warehouse, error, lambda connection: record_snapshot_failure(connection, wanted, error))
        raise
    with warehouse.transaction() as connection:
        record_snapshot_written(connection, wanted)
    return done


def _snapshot_days(
    warehouse: Warehouse, store: ParquetStore, wanted: Sequence[date], moved_out_of: Sequence[date]
) -> dict[date, DayRefresh]:
    counts = warehouse.count_by_day(wanted)
    looked_at = [day for day, count in counts.items() if count or store.has_files(day)]
    emptied = {day for day in moved_out_of if not counts[day]}
    done: dict[date, DayRefresh] = {}
    for batch in warehouse.day_batches(looked_at, ROWS_AT_ONCE):
        rewrite = {day: MOVED_OUT for day in batch if day in emptied}
        # As Arrow from end to end: the rows go from the database's values to Parquet without pandas objects.
        done.update(refresh_days(store, batch, warehouse.read_days_table, rewrite))
    return {day: done.get(day, DayRefresh(day)) for day in wanted}
