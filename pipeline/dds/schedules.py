"""The daily run: yesterday's partition, plus earlier days that still hold Running jobs.

A job Running at one sync usually ends within hours; re-syncing the days that still hold Running jobs (while the
API still answers for them) lands their final state within a day. Contiguous days share one run, so the API
is called once per run of days.
"""

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from pipeline.dds.assets import dds_jobs, dds_jobs_parquet
from pipeline.dds.partitions import day_key, dds_daily_partitions, range_tags
from pipeline.dds.resources import WarehouseResource
from pipeline.sync import GONE, coverage, retained_since



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


def run_request(first: date, last: date) -> RunRequest:
    """One run over the days ``first``..``last``: a single partition, or a partition range (single-run backfill)."""
    run_key = f"{day_key(first)}...{day_key(last)}"
    if first == last:
        return RunRequest(run_key=run_key, partition_key=day_key(first))
    return RunRequest(run_key=run_key, tags=range_tags(first, last))


@schedule(
    name="dds_jobs_daily",
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    target=[dds_jobs, dds_jobs_parquet],
    description="00:15 UTC: yesterday's jobs, and a re-sync of the retained days that still hold Running jobs.",
)
def dds_jobs_daily(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
    now = (context.scheduled_execution_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    first_day = dds_daily_partitions.start.date()
    since = max(first_day, retained_since(now).date())
    running = warehouse.get().days_with_status("Running", since=since)
    runs = days_to_sync(now, running, first_day)
    context.log.info("daily run: " + ", ".join(f"{day_key(a)}...{day_key(b)}" for a, b in runs))
    return [run_request(a, b) for a, b in runs]
