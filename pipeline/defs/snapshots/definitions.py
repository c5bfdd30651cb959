"""The snapshots area's definitions: asset ``dds_jobs_parquet``, its check ``parquet_matches_warehouse``, and the
job ``dds_parquet_verify``."""

from dagster import Definitions

from pipeline.defs.partitions import dds_partitions
from pipeline.defs.snapshots.assets import build_snapshot_assets
from pipeline.defs.snapshots.checks import parquet_matches_warehouse
from pipeline.defs.snapshots.verify_job import dds_parquet_verify
from pipeline.config import Deployment


def build_snapshot_definitions(deployment: Deployment) -> Definitions:
    return Definitions(
        assets=[build_snapshot_assets(dds_partitions(deployment), deployment.targets)],
        asset_checks=[parquet_matches_warehouse],
        jobs=[dds_parquet_verify],
    )
