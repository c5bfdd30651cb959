"""Asset checks on the stored jobs, over the days of the run that executes them.

A check runs in the same run as its asset, so it looks at the days that run synced (the partition tags);
launched alone it looks at the last CHECK_DAYS_ALONE days (pipeline/defs/partitions.py). It never scans the whole
history.
"""

from datetime import date
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    MetadataValue,
    asset_check,
)

from pipeline.defs.partitions import SAMPLE_ROWS, checked_days
from pipeline.defs.resources import WarehouseResource
from pipeline.sqlfiles import read_sql

if TYPE_CHECKING:
    import pandas as pd

def _result(found: "pd.DataFrame", first: date, last: date, what: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=found.empty,
        metadata={
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            what: len(found),
            "sample": MetadataValue.json(found.head(SAMPLE_ROWS).astype(str).to_dict("records")),
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
