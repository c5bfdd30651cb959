"""Asset checks on the stored jobs, over the days of the run that executes them.

A check runs in the same run as its asset, so it looks at the days that run synced (the partition tags);
launched alone it looks at the last CHECK_DAYS_ALONE days. It never scans the whole history.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, asset_check

from pipeline.dds.assets import dds_jobs, dds_jobs_parquet
from pipeline.dds.partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG, days_between, split_key
from pipeline.dds.resources import ParquetSnapshotResource, WarehouseResource
from pipeline.sqlfiles import read_sql
from pipeline.storage.schema import KEY_COLUMNS, arrow_to_frame
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
        # With several targets the keys read YYYY-MM-DD|target; a run's range is of one target's days.
        return split_key(first)[0], split_key(last)[0]
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
    if warehouse.get().key_is_enforced():
        # The database refuses a second row of a key: nothing to look for (the scan took 40 ms a month).
        result = _result(pd.DataFrame(), *checked_days(context), "duplicated_keys")
        return AssetCheckResult(passed=result.passed, metadata={
            **result.metadata, "enforced_by": "the table's primary key (project_id, id)"})
    return _warehouse_check(context, warehouse, "checks/duplicate_keys.sql", "duplicated_keys")


@asset_check(asset=dds_jobs, description="No job has ended_at before created_at.")
def ended_not_before_created(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _warehouse_check(context, warehouse, "checks/ended_before_created.sql", "jobs_ending_before_creation")


# What must agree for a job to be in the same state on both sides, compared in the columns' own types: formatting
# every row's date and time as text took most of the check's time; only the sampled problems are shown as text.
_STATE = ("project_id", "id", "created_date", "status")
# What a disagreement shows: last_seen_at tells which side is behind.
_COMPARED = (*_STATE, "last_seen_at")


@asset_check(asset=dds_jobs_parquet, description="The Parquet snapshot of each day holds exactly the warehouse's "
             "rows of that day, in the same state, once each.")
def parquet_matches_warehouse(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource
) -> AssetCheckResult:
    first, last = checked_days(context)
    days = days_between(first, last)
    store, snapshots = warehouse.get(), parquet.get()
    problems, rows = [], {"warehouse_rows": 0, "parquet_rows": 0}
    # The files are read beside the database (both mostly outside the GIL): the check takes the longer of the two.
    with ThreadPoolExecutor(max_workers=1) as beside:
        for batch in store.day_batches(days, ROWS_AT_ONCE):
            reading = beside.submit(snapshots.read_days_table, batch, columns=_STATE)
            stored = store.read_days_table(batch, columns=_STATE)
            snapshot = reading.result()
            rows["warehouse_rows"] += stored.num_rows
            rows["parquet_rows"] += snapshot.num_rows
            if not _agree(stored, snapshot):
                # Read again with last_seen_at, which the report shows beside each disagreement.
                problems.append(_disagreements(*(arrow_to_frame(side.read_days_table(batch, columns=_COMPARED),
                                                                _COMPARED) for side in (store, snapshots))))
    found = pd.concat(problems) if problems else pd.DataFrame(columns=[*_COMPARED, "problem"])
    result = _result(found, first, last, "disagreements")
    return AssetCheckResult(passed=result.passed, metadata={**result.metadata, **rows})


def _agree(stored: pa.Table, snapshot: pa.Table) -> bool:
    """The usual outcome, found in Arrow without building frames: the same keys on both sides, each once, in the
    same state. Anything else goes to _disagreements, which says what differs."""
    if stored.num_rows != snapshot.num_rows:
        return False
    by_key = [(name, "ascending") for name in KEY_COLUMNS]
    stored, snapshot = stored.sort_by(by_key), snapshot.sort_by(by_key)
    if not all(stored[name].equals(snapshot[name]) for name in _STATE):
        return False
    # Sorted by key, a doubled key sits next to itself (on both sides alike, their keys being equal).
    projects, ids = (stored[name].combine_chunks() for name in KEY_COLUMNS)
    doubled = pc.and_(pc.equal(projects[1:], projects[:-1]), pc.equal(ids[1:], ids[:-1]))
    return not pc.any(doubled).as_py()




def _disagreements(stored: pd.DataFrame, snapshot: pd.DataFrame) -> pd.DataFrame:
    """Keys twice on one side, on one side only, or in another state (status, day) on each, one row per problem."""
    doubled = pd.concat([_doubled(stored, "duplicated in the warehouse"), _doubled(snapshot, "duplicated in Parquet")])
    merged = stored.drop_duplicates(["project_id", "id"]).merge(
        snapshot.drop_duplicates(["project_id", "id"]), how="outer", on=["project_id", "id"],
        suffixes=("_warehouse", "_parquet"), indicator=True)
    differs = merged[
        (merged["_merge"] != "both") | _differ(merged, "status") | _differ(merged, "created_date")
    ]
    return pd.concat([doubled, differs.drop(columns="_merge").assign(problem=differs["_merge"].map(_WHERE))])


def _differ(merged: pd.DataFrame, column: str) -> pd.Series:
    """Rows whose ``column`` differs between the two sides; missing on both (a job sent without status) is the same."""
    ours, theirs = merged[f"{column}_warehouse"], merged[f"{column}_parquet"]
    return (ours != theirs) & ~(ours.isna() & theirs.isna())


_WHERE = {"left_only": "only in the warehouse", "right_only": "only in Parquet", "both": "state differs"}


def _doubled(frame: pd.DataFrame, problem: str) -> pd.DataFrame:
    return frame[frame.duplicated(["project_id", "id"], keep=False)].assign(problem=problem)
