"""Helpers for tests of the daily schedule: its ticks evaluated for real, against a pipeline's warehouse."""

from datetime import date, datetime, time, timezone

from dagster import DagsterInstance, build_schedule_context

from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.defs.resources import WarehouseResource


def tick_at(day: date) -> datetime:
    return datetime.combine(day, time(0, 15), tzinfo=timezone.utc)


def evaluate_daily_schedule(p, tick: datetime, instance: DagsterInstance | None = None) -> list:
    """One real evaluation of dds_jobs_daily against the pipeline's warehouse and its Dagster instance (or
    ``instance``: another Dagster home, which knows none of the pipeline's runs)."""
    schedule = p.definitions().get_schedule_def("dds_jobs_daily")
    with build_schedule_context(instance=instance or p.instance, scheduled_execution_time=tick,
                                resources={"warehouse": WarehouseResource(url=p.settings.warehouse_url)}) as context:
        return list(schedule(context))


def asked_days(requests) -> list[tuple[str, str]]:
    """The (first, last) days of each run a tick asked for."""
    return [(r.tags.get(RANGE_START_TAG) or r.partition_key, r.tags.get(RANGE_END_TAG) or r.partition_key)
            for r in requests]
