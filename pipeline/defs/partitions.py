"""Partitions: one per UTC calendar day of a job's ``created_at``, keyed ``YYYY-MM-DD``, today included.

Today is a partition like any other: it holds the jobs created so far (the intraday schedule stores them), and the
sync ledger never records it complete before it has ended.

With several targets (``DDS_TARGETS_FILE``) a partition is a day of one target, keyed ``YYYY-MM-DD|target``
(Dagster multi-partitions, dimensions ``date`` and ``target``): the UI shows days x targets, and each target's
days are synced, failed and retried in runs of their own.
"""

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

from dagster import (
    AssetCheckExecutionContext,
    AssetExecutionContext,
    DailyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindow,
)

from pipeline.api.windows import days_between
from pipeline.config import ConfigError, Deployment
from pipeline.targets import Target

# The run tags through which Dagster hands a run its partition range (set by --partition-range, single-run
# backfills and schedules) or its single partition.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
# The moment a run's requests end at (ISO 8601, UTC), fixed before the run starts: the intraday tick's time. A run
# without it (launched by hand) fixes it when it starts. A job created after it is left to the next run.
AS_OF_TAG = "dds/as_of"


DATE_DIMENSION, TARGET_DIMENSION = "date", "target"
# The run's target and region as run tags: deploy/dagster.yaml limits concurrent runs per region with them.
TARGET_TAG, REGION_TAG = "dds/target", "dds/region"


def range_tags(first: date, last: date, target: str | None = None) -> dict[str, str]:
    """Run tags asking for the partitions ``first``..``last`` (of ``target``, with several targets) as one run."""
    return {RANGE_START_TAG: partition_key(first, target), RANGE_END_TAG: partition_key(last, target)}


def day_of_every_target_tags(day: date, target_names: Sequence[str]) -> dict[str, str]:
    """Run tags asking for ``day`` of every one of ``target_names`` (in the order the partitions list them) as one
    run: a range over the target dimension, which Dagster expands to the day x each target."""
    return {RANGE_START_TAG: partition_key(day, target_names[0]), RANGE_END_TAG: partition_key(day, target_names[-1])}


def partition_key(day: date, target: str | None = None) -> str:
    """A day's partition key: ``YYYY-MM-DD``, or ``YYYY-MM-DD|target`` with several targets."""
    if target is None:
        return day_key(day)
    return MultiPartitionKey({DATE_DIMENSION: day_key(day), TARGET_DIMENSION: target})


def target_partition_key(day: date, target: Target) -> str:
    """``day``'s partition key of ``target``: ``YYYY-MM-DD|target`` for a target of DDS_TARGETS_FILE, the plain day
    for the one project of DDS_PROJECT_ID."""
    return partition_key(day, target.name if target.in_targets_file else None)


def target_range_tags(first: date, last: date, target: Target) -> dict[str, str]:
    """Run tags asking for ``target``'s days ``first``..``last`` as one run."""
    return {RANGE_START_TAG: target_partition_key(first, target), RANGE_END_TAG: target_partition_key(last, target)}


def daily_partitions(start_date: date) -> DailyPartitionsDefinition:
    """Days from ``start_date`` up to today (UTC): today's partition is in progress until midnight."""
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC", fmt="%Y-%m-%d", end_offset=1)


def dds_partitions(settings: Deployment) -> PartitionsDefinition:
    """Daily partitions, or days x targets when ``settings`` lists several targets."""
    daily = daily_partitions(settings.start_date)
    if not settings.multi_target:
        return daily
    targets = StaticPartitionsDefinition([target.name for target in settings.targets])
    return MultiPartitionsDefinition({DATE_DIMENSION: daily, TARGET_DIMENSION: targets})


def days_by_target(partitions_def: PartitionsDefinition, keys: Sequence[str]) -> dict[str, list[date]]:
    """The days of multi-partition ``keys`` grouped by target, each list sorted."""
    assert isinstance(partitions_def, MultiPartitionsDefinition)
    grouped: dict[str, set[date]] = {}
    for key in keys:
        dimensions = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension
        grouped.setdefault(dimensions[TARGET_DIMENSION], set()).add(date.fromisoformat(dimensions[DATE_DIMENSION]))
    return {target: sorted(days) for target, days in sorted(grouped.items())}


def day_of_key(key: str) -> date:
    """The day of a partition key as found in run tags (``YYYY-MM-DD``, or ``YYYY-MM-DD|target``)."""
    return date.fromisoformat(key.partition("|")[0])


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


def day_key(day: date | datetime) -> str:
    return day.strftime("%Y-%m-%d")


def run_moment(context: AssetExecutionContext) -> datetime:
    """The moment the run's requests end at: its ``dds/as_of`` tag (the intraday tick's time), else now. A job
    created after it is the next run's. A moment later than now (a clock ahead of this one) is taken as now: a day
    must never count as over before it is."""
    now = datetime.now(timezone.utc)
    tagged = context.run.tags.get(AS_OF_TAG)
    if tagged is None:
        return now
    try:
        moment = datetime.fromisoformat(tagged)
    except ValueError:
        raise ConfigError(f"run tag {AS_OF_TAG}={tagged!r} is not an ISO 8601 time such as "
                          "2026-11-20T12:15:00+00:00") from None
    if moment.tzinfo is None:
        raise ConfigError(f"run tag {AS_OF_TAG}={tagged!r} has no UTC offset, such as +00:00")
    return min(moment.astimezone(timezone.utc), now)


# Launched without a partition (from the UI's check list), a check covers the API's month and a day more.
CHECK_DAYS_ALONE = 31
# Rows a check shows of what it found.
SAMPLE_ROWS = 20


def checked_days(context: AssetCheckExecutionContext) -> tuple[date, date]:
    """The first and last day of the run's partitions, or the last CHECK_DAYS_ALONE days."""
    tags = context.run.tags
    first = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    if first and last:
        # With several targets the keys read YYYY-MM-DD|target; a run's range is of one target's days.
        return day_of_key(first), day_of_key(last)
    today = datetime.now(timezone.utc).date()
    return today - timedelta(days=CHECK_DAYS_ALONE), today
