"""Asset checks on the stored jobs, over the days of the run that executes them.

A check runs in the same run as its asset, so it looks at the days that run synced (the partition tags);
launched alone it looks at the last CHECK_DAYS_ALONE days. It never scans the whole history.
"""

from datetime import date, datetime, timedelta, timezone

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, asset_check

from pipeline.dds.assets import dds_jobs, dds_jobs_parquet
from pipeline.dds.partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG, days_between
from pipeline.dds.resources import ParquetSnapshotResource, WarehouseResource
from pipeline.sqlfiles import read_sql
from pipeline.sync import ROWS_AT_ONCE

# Launched without a partition (from the UI's check list), a check covers the API's month and a day more.
CHECK_DAYS_ALONE = 31
_SAMPLE = 20


def checked_days(context: AssetCheckExecutionContext) -> tuple[date, date]:
    """The first and last day of the run's partitions, or the last CHECK_DAYS_ALONE days."""
    tags = context.run.tags
    first = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    if first and last:
        return date.fromisoformat(first), date.fromisoformat(last)
    today = datetime.now(timezone.utc).date()
    return today - timedelta(days=CHECK_DAYS_ALONE), today


def _result(found: pd.DataFrame, first: date, last: date, what: str) -> AssetCheckResult:
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


@asset_check(asset=dds_jobs, description="No (project_id, id) is stored twice among the run's days.")
def no_duplicate_keys(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _warehouse_check(context, warehouse, "checks/duplicate_keys.sql", "duplicated_keys")


@asset_check(asset=dds_jobs, description="No job has ended_at before created_at.")
def ended_not_before_created(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _warehouse_check(context, warehouse, "checks/ended_before_created.sql", "jobs_ending_before_creation")


# What is compared, in the columns' own types: formatting every row's date and time as text took most of the
# check's time; only the sampled problems are shown as text (_result).
_COMPARED = ("project_id", "id", "created_date", "status", "last_seen_at")


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(_COMPARED)]


@asset_check(asset=dds_jobs_parquet, description="The Parquet snapshot of each day holds exactly the warehouse's "
             "rows of that day, in the same state, once each.")
def parquet_matches_warehouse(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource
) -> AssetCheckResult:
    first, last = checked_days(context)
    days = days_between(first, last)
    problems, rows = [], {"warehouse_rows": 0, "parquet_rows": 0}
    for batch in warehouse.get().day_batches(days, ROWS_AT_ONCE):
        stored = warehouse.get().read_days(batch, columns=_COMPARED)
        snapshot = _keys(parquet.get().read_days(batch))
        problems.append(_disagreements(stored, snapshot))
        rows["warehouse_rows"] += len(stored)
        rows["parquet_rows"] += len(snapshot)
    result = _result(pd.concat(problems), first, last, "disagreements")
    return AssetCheckResult(passed=result.passed, metadata={**result.metadata, **rows})


def _disagreements(stored: pd.DataFrame, snapshot: pd.DataFrame) -> pd.DataFrame:
    """Keys twice on one side, on one side only, or in another state (status, day) on each, one row per problem."""
    doubled = pd.concat([_doubled(stored, "duplicated in the warehouse"), _doubled(snapshot, "duplicated in Parquet")])
    merged = stored.drop_duplicates(["project_id", "id"]).merge(
        snapshot.drop_duplicates(["project_id", "id"]), how="outer", on=["project_id", "id"],
        suffixes=("_warehouse", "_parquet"), indicator=True)
    differs = merged[
        (merged["_merge"] != "both")
        | (merged["status_warehouse"] != merged["status_parquet"])
        | (merged["created_date_warehouse"] != merged["created_date_parquet"])
    ]
    return pd.concat([doubled, differs.drop(columns="_merge").assign(problem=differs["_merge"].map(_WHERE))])


_WHERE = {"left_only": "only in the warehouse", "right_only": "only in Parquet", "both": "state differs"}


def _doubled(frame: pd.DataFrame, problem: str) -> pd.DataFrame:
    return frame[frame.duplicated(["project_id", "id"], keep=False)].assign(problem=problem)
