"""Asset checks on the stored jobs, over the days of the run that executes them.

A check runs in the same run as its asset, so it looks at the days that run synced (the partition tags);
launched alone it looks at the last CHECK_DAYS_ALONE days. It never scans the whole history.
"""

from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    MetadataValue,
    asset_check,
)

from pipeline.defs.partitions import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    split_key,
)
from pipeline.api.windows import days_between
from pipeline.defs.resources import ParquetSnapshotResource, WarehouseResource
from pipeline.sqlfiles import read_sql

if TYPE_CHECKING:
    import pandas as pd

# Launched without a partition (from the UI's check list), a check covers the API's month and a day more.
CHECK_DAYS_ALONE = 31
_SAMPLE = 20


def checked_days(context: AssetCheckExecutionContext) -> tuple[date, date]:
    """The first and last day of the run's partitions, or the last CHECK_DAYS_ALONE days."""
    tags = context.run.tags
    first = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    if first and last:
        # With several targets the keys read YYYY-MM-DD|target; a run's range is of one target's days.
        return split_key(first)[0], split_key(last)[0]
    today = datetime.now(timezone.utc).date()
    return today - timedelta(days=CHECK_DAYS_ALONE), today


def _result(found: "pd.DataFrame", first: date, last: date, what: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=found.empty,
        metadata={
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            what: len(found),
            "sample": MetadataValue.json(found.head(_SAMPLE).astype(str).to_dict("records")),
        },
    )


def _warehouse_check(context: AssetCheckExecutionContext, warehouse: WarehouseResource, sql: str, what: str):
    first, last = checked_days(context)
    found = warehouse.get().query(read_sql(sql), first_day=first, last_day=last)
    return _result(found, first, last, what)


@asset_check(asset="dds_jobs", description="No (project_id, id) is stored twice among the run's days.")
def no_duplicate_keys(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    if warehouse.get().key_is_enforced():
        # Imported when a check runs, as the warehouse's queries do: loading the definitions needs no pandas.
        import pandas as pd

        # The database refuses a second row of a key: nothing to look for (the scan took 40 ms a month).
        result = _result(pd.DataFrame(), *checked_days(context), "duplicated_keys")
        return AssetCheckResult(passed=result.passed, metadata={
            **result.metadata, "enforced_by": "the table's primary key (project_id, id)"})
    return _warehouse_check(context, warehouse, "checks/duplicate_keys.sql", "duplicated_keys")


@asset_check(asset="dds_jobs", description="No job has ended_at before created_at.")
def ended_not_before_created(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _warehouse_check(context, warehouse, "checks/ended_before_created.sql", "jobs_ending_before_creation")


# What must agree for a job to be in the same state on both sides: only these columns are read from either side.
_STATE = ("project_id", "id", "created_date", "status")


@asset_check(asset="dds_jobs_parquet", description="The Parquet snapshot of each day holds exactly the warehouse's "
             "rows of that day, in the same state, once each, in files that read.")
def parquet_matches_warehouse(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource
) -> AssetCheckResult:
    from pipeline.snapshots.verify import OK, compare_days

    first, last = checked_days(context)
    # The comparison of the whole-history verification (parquet_verify.py), over the run's days and state columns.
    verdicts = compare_days(warehouse.get(), parquet.get(), days_between(first, last), columns=_STATE).values()
    bad = [verdict for verdict in verdicts if verdict.status != OK]
    samples = [{"day": v.day.isoformat(), **sample} for v in bad for sample in v.difference.samples]
    unreadable = [path for v in bad for path in v.files.unreadable]
    return AssetCheckResult(passed=not bad, metadata={
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "disagreements": sum(v.difference.jobs for v in bad) + len(unreadable),
        "sample": MetadataValue.json(samples[:_SAMPLE]),
        "days_differing": MetadataValue.json({v.day.isoformat(): v.problems() for v in bad}),
        "unreadable_files": MetadataValue.json(unreadable),
        "warehouse_rows": sum(v.warehouse_rows for v in verdicts),
        "parquet_rows": sum(v.files.table.num_rows for v in verdicts),
    })
