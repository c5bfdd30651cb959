"""The one Dagster ``Definitions`` object, ``defs``: assets, checks, schedule and resources, assembled.

Resources read the CONTRACT.md variables; secrets go in as ``EnvVar`` so Dagster records the variable's name,
never its value. All steps run in one process: a run pays Python and Dagster start-up once.
"""

import os

from dagster import Definitions, EnvVar, in_process_executor

from pipeline.dds.assets import dds_jobs, dds_jobs_parquet
from pipeline.dds.checks import ended_not_before_created, no_duplicate_keys, parquet_matches_warehouse
from pipeline.dds.resources import DdsTaskCenterResource, ParquetSnapshotResource, WarehouseResource
from pipeline.dds.schedules import dds_jobs_daily
from pipeline.settings import Settings

_SECRET_VARIABLES = {
    "auth_token": "DDS_AUTH_TOKEN",
    "access_key": "HUAWEICLOUD_SDK_AK",
    "secret_key": "HUAWEICLOUD_SDK_SK",
    "security_token": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "iam_username": "DDS_IAM_USERNAME",
    "iam_password": "DDS_IAM_PASSWORD",
    "iam_domain": "DDS_IAM_DOMAIN",
}


def dds_api_resource(settings: Settings) -> DdsTaskCenterResource:
    secrets = {field: EnvVar(var) for field, var in _SECRET_VARIABLES.items() if os.environ.get(var)}
    iam_endpoint = os.environ.get("DDS_IAM_ENDPOINT", "").strip()
    return DdsTaskCenterResource(
        project_id=settings.project_id or "",
        region=settings.region or "",
        endpoint=settings.endpoint or "",
        max_concurrency=settings.max_concurrency,
        ca_bundle=os.environ.get("DDS_CA_BUNDLE") or None,
        **({"iam_endpoint": iam_endpoint} if iam_endpoint else {}),
        **secrets,
    )


def build_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=[dds_jobs, dds_jobs_parquet],
        asset_checks=[no_duplicate_keys, ended_not_before_created, parquet_matches_warehouse],
        schedules=[dds_jobs_daily],
        resources={
            "dds_api": dds_api_resource(settings),
            "warehouse": WarehouseResource(url=settings.warehouse_url),
            "parquet": ParquetSnapshotResource(root=settings.parquet_root),
        },
        executor=in_process_executor,
    )


defs = build_definitions(Settings.from_env())
