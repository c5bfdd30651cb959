"""Daily partitions: one per UTC calendar day of a job's ``created_at``, keyed ``YYYY-MM-DD``."""

from datetime import date, datetime

from dagster import DailyPartitionsDefinition, TimeWindow

from pipeline.settings import ConfigError, Settings


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
    return [date.fromordinal(o) for o in range(first.toordinal(), end.toordinal())]


def day_key(day: date | datetime) -> str:
    return day.strftime("%Y-%m-%d")
