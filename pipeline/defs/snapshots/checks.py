"""The asset check ``parquet_matches_warehouse`` on ``dds_jobs_parquet``, over the days of the run that executes it
(the partition tags; launched alone, the last CHECK_DAYS_ALONE days: pipeline/defs/partitions.py)."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, asset_check

from pipeline.defs.partitions import SAMPLE_ROWS, checked_days, days_between
from pipeline.defs.resources import ParquetSnapshotResource, WarehouseResource
from pipeline.defs.steps import PARQUET_ASSET

# What must agree for a job to be in the same state on both sides: only these columns are read from either side.
_STATE = ("project_id", "id", "created_date", "status")


@asset_check(asset=PARQUET_ASSET, description="The Parquet snapshot of each day holds exactly the warehouse's "
             "rows of that day, in the same state, once each, in files that read.")
def parquet_matches_warehouse(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource
) -> AssetCheckResult:
    from pipeline.snapshots.verify import OK, compare_days

    first, last = checked_days(context)
    # The comparison of the whole-history verification (verify_job.py), over the run's days and state columns.
    verdicts = compare_days(warehouse.get(), parquet.get(), days_between(first, last), columns=_STATE).values()
    bad = [verdict for verdict in verdicts if verdict.status != OK]
    samples = [{"day": v.day.isoformat(), **sample} for v in bad for sample in v.difference.samples]
    unreadable = [path for v in bad for path in v.files.unreadable]
    return AssetCheckResult(passed=not bad, metadata={
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "disagreements": sum(v.difference.jobs for v in bad) + len(unreadable),
        "sample": MetadataValue.json(samples[:SAMPLE_ROWS]),
        "days_differing": MetadataValue.json({v.day.isoformat(): v.problems() for v in bad}),
        "unreadable_files": MetadataValue.json(unreadable),
        "warehouse_rows": sum(v.warehouse_rows for v in verdicts),
        "parquet_rows": sum(v.files.table.num_rows for v in verdicts),
    })
