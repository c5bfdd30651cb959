"""Daily partitions: one per UTC calendar day of a job's ``created_at``, keyed ``YYYY-MM-DD``."""

from datetime import date, datetime

from dagster import DailyPartitionsDefinition, TimeWindow

from pipeline.settings import ConfigError, Settings


# The run tags through which Dagster hands a run its partition range (set by --partition-range, single-run
# backfills and schedules) or its single partition.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags asking for the partitions ``first``..``last`` as one run."""
    return {RANGE_START_TAG: day_key(first), RANGE_END_TAG: day_key(last)}


def daily_partitions(start_date: date) -> DailyPartitionsDefinition:
    """Days from ``start_date`` up to yesterday (UTC): a day becomes a partition once it is over."""
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC", fmt="%Y-%m-%d")


dds_daily_partitions = daily_partitions(Settings.from_env().start_date)


def days_of(window: TimeWindow) -> list[date]:
    """The UTC days a Dagster partition time window covers; ConfigError for a range given backwards."""
    first, end = window.start.date(), window.end.date()
    if end <= first:
        # Dagster accepts a range whose start is after its end and hands over an empty window.
        last = date.fromordinal(end.toordinal() - 1)
        raise ConfigError(
            f"partition range {day_key(first)}...{day_key(last)} is empty: its first day is after its last"
        )
    return days_between(first, date.fromordinal(end.toordinal() - 1))


def days_between(first: date, last: date) -> list[date]:
    """The UTC days ``first`` to ``last``, both included."""
    return [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]


def day_key(day: date | datetime) -> str:
    return day.strftime("%Y-%m-%d")
