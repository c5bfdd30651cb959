"""The daily run: yesterday's partition, plus the earlier days that still hold Running jobs or hold no complete sync
(catch-up), for every target.

A job Running at one sync usually ends within hours; re-syncing the days that still hold Running jobs (while the
API still answers for them) lands their final state within a day. A day whose sync never ran, failed, met a broken
answer or was interrupted holds no complete sync in the sync ledger (pipeline/coverage.py): every tick asks for it
again while the API still answers for it. The ledger is in the warehouse, written by the asset itself, so a
backfill from the UI or the CLI counts as a scheduled run does, and a lost Dagster instance loses nothing of it.
Contiguous days share one run, so the API is called once per run of days; with several targets each target gets
runs of its own, so one that fails delays no other.
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone

from dagster import (
    AssetKey,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    TimeWindowPartitionsDefinition,
    schedule,
)

from pipeline.coverage import contiguous_runs, day_ranges, unsynced_days
from pipeline.dds.partitions import (
    REGION_TAG,
    TARGET_TAG,
    day_key,
    partition_key,
    range_tags,
)
from pipeline.dds.resources import WarehouseResource
from pipeline.sync import GONE, coverage, retained_since
from pipeline.targets import Target


def days_to_sync(
    now: datetime, running_days: Iterable[date], first_day: date, unsynced: Iterable[date] = ()
) -> list[tuple[date, date]]:
    """The runs of days the daily run asks for at ``now``: yesterday, and the days from ``first_day`` on that the API
    still answers for and that hold Running jobs or no complete sync (``unsynced``)."""
    yesterday = now.date() - timedelta(days=1)
    resync = [d for d in (*running_days, *unsynced) if first_day <= d < yesterday and coverage(d, now) != GONE]
    return contiguous_runs([*resync, yesterday]) if yesterday >= first_day else contiguous_runs(resync)


def run_request(first: date, last: date, target: Target | None = None, tick: datetime | None = None) -> RunRequest:
    """One run over the days ``first``..``last`` (of ``target``): a single partition, or a partition range.

    Dagster launches a schedule's run key only once: the key names the ``tick`` too, so that days whose run failed
    are asked for again, under a new key, at the next tick."""
    name = target.name if target else None
    run_key = f"{partition_key(first, name)}...{partition_key(last, name)}"
    if tick is not None:
        run_key = f"tick {tick.astimezone(timezone.utc):%Y-%m-%dT%H:%M}Z: {run_key}"
    tags = {TARGET_TAG: target.name, REGION_TAG: target.region} if target else {}
    if first == last:
        return RunRequest(run_key=run_key, partition_key=partition_key(first, name), tags=tags)
    return RunRequest(run_key=run_key, tags={**range_tags(first, last, name), **tags})


def build_daily_schedule(
    daily: TimeWindowPartitionsDefinition,
    targets: Sequence[Target] = (),
    project_id: str | None = None,
) -> ScheduleDefinition:
    """The ``dds_jobs_daily`` schedule over ``daily``'s days, for the one project (``project_id``; None: a day counts
    as synced when any project's sync completed it) or for each of ``targets``."""

    @schedule(
        name="dds_jobs_daily",
        cron_schedule="15 0 * * *",
        execution_timezone="UTC",
        # The report (unpartitioned, downstream of dds_jobs) is rebuilt in each run, after its sync.
        target=[AssetKey("dds_jobs"), AssetKey("dds_jobs_parquet"), AssetKey("dds_jobs_report"),
                AssetKey("dds_jobs_alerts")],
        description="00:15 UTC: yesterday's jobs, a re-sync of the retained days that still hold Running jobs, and "
        "every retained day without a complete sync (catch-up)"
        + (f", for each of the {len(targets)} targets." if targets else "."),
    )
    def dds_jobs_daily(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
        now = (context.scheduled_execution_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
        first_day = daily.start.date()
        since = max(first_day, retained_since(now).date())
        yesterday = now.date() - timedelta(days=1)
        store = warehouse.get()
        requests = []
        for target in targets or [None]:
            project = target.project_id if target else project_id
            running = store.days_with_status("Running", since=since, project_id=project)
            unsynced = unsynced_days(store, project, since, yesterday - timedelta(days=1))
            runs = days_to_sync(now, running, first_day, unsynced)
            named = f"{target.name}: " if target else ""
            catch_up = (f" (catch-up of {len(unsynced)} earlier day(s) without a complete sync: "
                        f"{', '.join(day_ranges(unsynced))})" if unsynced else "")
            context.log.info(f"daily run: {named}" + ", ".join(f"{day_key(a)}...{day_key(b)}" for a, b in runs)
                             + catch_up)
            requests.extend(run_request(a, b, target, tick=now) for a, b in runs)
        return requests

    return dds_jobs_daily

