"""The snapshots area's definitions: asset ``dds_jobs_parquet``, its check ``parquet_matches_warehouse``, the
job ``dds_parquet_verify``, and with several targets the sensor writing the snapshots a failed run left unwritten."""

from dagster import Definitions

from pipeline.defs.partitions import dds_partitions
from pipeline.defs.snapshots.after_failure import build_parquet_after_partial_failure
from pipeline.defs.snapshots.assets import build_snapshot_assets
from pipeline.defs.snapshots.checks import parquet_matches_warehouse
from pipeline.defs.snapshots.verify_job import dds_parquet_verify
from pipeline.config import Deployment


def build_snapshot_definitions(deployment: Deployment) -> Definitions:
    partitions_def = dds_partitions(deployment)
    jobs, sensors = [dds_parquet_verify], []
    # Only a run over several targets stores some and fails on others.
    if deployment.multi_target:
        parquet_job, after_failure = build_parquet_after_partial_failure(partitions_def, deployment.targets)
        jobs.append(parquet_job)
        sensors.append(after_failure)
    return Definitions(
        assets=[build_snapshot_assets(partitions_def, deployment.targets)],
        asset_checks=[parquet_matches_warehouse],
        jobs=jobs,
        sensors=sensors,
    )
