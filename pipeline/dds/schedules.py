"""The daily run: yesterday's partition, plus earlier days that still hold Running jobs, for every target.

A job Running at one sync usually ends within hours; re-syncing the days that still hold Running jobs (while the
API still answers for them) lands their final state within a day. Contiguous days share one run, so the API
is called once per run of days; with several targets each target gets runs of its own, so one that fails
delays no other.
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

from pipeline.dds.partitions import REGION_TAG, TARGET_TAG, day_key, dds_daily_partitions, partition_key, range_tags
from pipeline.dds.resources import WarehouseResource
from pipeline.sync import GONE, coverage, retained_since
from pipeline.targets import Target



def contiguous_runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted days grouped into (first, last) runs of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def days_to_sync(now: datetime, running_days: Iterable[date], first_day: date) -> list[tuple[date, date]]:
    """The runs of days the daily run asks for at ``now``: yesterday and the still-retained days with Running jobs."""
    yesterday = now.date() - timedelta(days=1)
    resync = [d for d in running_days if first_day <= d < yesterday and coverage(d, now) != GONE]
    return contiguous_runs([*resync, yesterday]) if yesterday >= first_day else contiguous_runs(resync)


def run_request(first: date, last: date, target: Target | None = None) -> RunRequest:
    """One run over the days ``first``..``last`` (of ``target``): a single partition, or a partition range."""
    name = target.name if target else None
    run_key = f"{partition_key(first, name)}...{partition_key(last, name)}"
    tags = {TARGET_TAG: target.name, REGION_TAG: target.region} if target else {}
    if first == last:
        return RunRequest(run_key=run_key, partition_key=partition_key(first, name), tags=tags)
    return RunRequest(run_key=run_key, tags={**range_tags(first, last, name), **tags})


def build_daily_schedule(
    daily: TimeWindowPartitionsDefinition = dds_daily_partitions, targets: Sequence[Target] = ()
) -> ScheduleDefinition:
    """The ``dds_jobs_daily`` schedule over ``daily``'s days, for the one project or for each of ``targets``."""

    @schedule(
        name="dds_jobs_daily",
        cron_schedule="15 0 * * *",
        execution_timezone="UTC",
        # The report (unpartitioned, downstream of dds_jobs) is rebuilt in each run, after its sync.
        target=[AssetKey("dds_jobs"), AssetKey("dds_jobs_parquet"), AssetKey("dds_jobs_report")],
        description="00:15 UTC: yesterday's jobs, and a re-sync of the retained days that still hold Running jobs"
        + (f", for each of the {len(targets)} targets." if targets else "."),
    )
    def dds_jobs_daily(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
        now = (context.scheduled_execution_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
        first_day = daily.start.date()
        since = max(first_day, retained_since(now).date())
        requests = []
        for target in targets or [None]:
            running = warehouse.get().days_with_status(
                "Running", since=since, project_id=target.project_id if target else None
            )
            runs = days_to_sync(now, running, first_day)
            named = f"{target.name}: " if target else ""
            context.log.info(f"daily run: {named}" + ", ".join(f"{day_key(a)}...{day_key(b)}" for a, b in runs))
            requests.extend(run_request(a, b, target) for a, b in runs)
        return requests

    return dds_jobs_daily


dds_jobs_daily = build_daily_schedule()
