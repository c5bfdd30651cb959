"""The code location's definitions, ``defs``: built lazily (``@dg.definitions``), when Dagster or dg loads them.

Importing this module (or any other of the package) reads no environment and changes no process state: ``defs()``
reads the deployment once (pipeline/config.py), sets the process up, merges the definitions of each area of
pipeline/defs/ (sync, snapshots, alerts, report) and binds the resources. Secrets go in as ``EnvVar`` so Dagster
records the variable's name, never its value. All steps run in one process: a run pays Python and Dagster start-up
once.
"""

import warnings
from functools import lru_cache

import dagster as dg
import sqlalchemy as sa

from pipeline.api.credentials import ENV_VARIABLES
from pipeline.defs.alerts.definitions import build_alerts_definitions
from pipeline.defs.console import quiet_failures_in_process_executor
from pipeline.defs.report.definitions import build_report_definitions
from pipeline.defs.resources import (
    AlertsResource,
    CredentialsConfig,
    DdsTaskCenterResource,
    ParquetSnapshotResource,
    ReportStoreResource,
    WarehouseResource,
)
from pipeline.defs.snapshots.definitions import build_snapshot_definitions
from pipeline.defs.sync.definitions import build_sync_definitions
from pipeline.memory import use_returning_allocator
from pipeline.report.build import reports_location
from pipeline.config import ALERT_URLS_VARIABLE, Deployment, deployment_at_load


def credential_fields(settings: Deployment, prefix: str = "") -> dict[str, dg.EnvVar]:
    """The credential fields whose variables (under ``prefix``) are set, as ``EnvVar``: an EnvVar of an unset
    variable fails the resource even when unused."""
    return {field: dg.EnvVar(prefix + var) for field, var in ENV_VARIABLES.items()
            if prefix + var in settings.credential_variables}


def dds_api_resource(settings: Deployment) -> DdsTaskCenterResource:
    targets = {target.name: CredentialsConfig(**credential_fields(settings, target.credentials_prefix))
               for target in settings.targets if target.credentials_prefix}
    return DdsTaskCenterResource(
        project_id=settings.bound("DDS_PROJECT_ID", settings.project_id or ""),
        region=settings.bound("DDS_REGION", settings.region or ""),
        endpoint=settings.bound("DDS_ENDPOINT", settings.endpoint or ""),
        max_concurrency=settings.bound("DDS_MAX_CONCURRENCY", settings.max_concurrency),
        max_rate=settings.max_rate,
        # A float field: Dagster binds EnvVar to strings and whole numbers only.
        retry_budget_seconds=settings.retry_budget_seconds,
        ca_bundle=settings.bound("DDS_CA_BUNDLE", settings.ca_bundle),
        allow_insecure_http=settings.allow_insecure_http,
        target_credentials=targets,
        **credential_fields(settings),
    )


def warehouse_url_config(settings: Deployment) -> str:
    """The warehouse URL as Dagster should record it: ``EnvVar("DDS_WAREHOUSE_URL")`` when it holds a password.

    Dagster stores a resource's configured values in every run's job snapshot and shows them in its UI; a
    PostgreSQL password in the URL would be stored in plain text there.
    """
    if settings.warehouse_url_from_env and sa.engine.make_url(settings.warehouse_url).password:
        return dg.EnvVar("DDS_WAREHOUSE_URL")
    return settings.warehouse_url


def alerts_resource(settings: Deployment) -> AlertsResource:
    """The alerts' resource: the URLs (tokens, passwords) as ``EnvVar``, so Dagster never stores them."""
    return AlertsResource(
        urls=dg.EnvVar(ALERT_URLS_VARIABLE) if settings.alert_destinations else "",
        tasks=",".join(settings.alert_tasks),
        window_hours=settings.bound("DDS_ALERT_WINDOW_HOURS", settings.alert_window_hours),
        intraday_minutes=settings.bound("DDS_INTRADAY_MINUTES", settings.intraday_minutes),
    )


def s3_variables(settings: Deployment) -> dict[str, dg.EnvVar]:
    """The S3 variables that are set (an s3:// Parquet root), each as ``EnvVar`` of itself: the run reads the
    values, Dagster records the names (AWS_SECRET_ACCESS_KEY among them)."""
    return {name: dg.EnvVar(name) for name in sorted(settings.s3_variables)}


def resources(settings: Deployment) -> dict[str, dg.ConfigurableResource]:
    """Every resource a run needs, bound to the deployment's values (secrets as ``EnvVar``)."""
    return {
        "dds_api": dds_api_resource(settings),
        "warehouse": WarehouseResource(url=warehouse_url_config(settings), setting=settings.warehouse_setting),
        "parquet": ParquetSnapshotResource(root=settings.bound("DDS_PARQUET_ROOT", settings.parquet_root),
                                           setting=settings.parquet_setting,
                                           s3_variables=s3_variables(settings)),
        "alerts": alerts_resource(settings),
        "reports": ReportStoreResource(location=reports_location(settings.data_dir, settings.parquet_root),
                                       s3_variables=s3_variables(settings)),
    }


def build_definitions(settings: Deployment) -> dg.Definitions:
    """Each area's definitions over ``settings``' partitions (days, or days x targets with DDS_TARGETS_FILE),
    merged, with the resources bound."""
    return dg.Definitions.merge(
        build_sync_definitions(settings),
        build_snapshot_definitions(settings),
        build_alerts_definitions(settings),
        build_report_definitions(settings),
        dg.Definitions(
            resources=resources(settings),
            # In process, as Dagster's in_process_executor; a run failing on one of our one-line errors prints it
            # without Dagster's frames (pipeline/defs/console.py).
            executor=quiet_failures_in_process_executor,
        ),
    )


# Dagster calls ``defs`` again for each step of a run (its in-process executor rebuilds the job per step): one
# deployment is assembled once per process, which took a 30-day sync's six steps 0.25 s of CPU.
_assembled = lru_cache(maxsize=4)(build_definitions)


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions of the deployment the environment describes, read once, when Dagster or dg loads them."""
    use_returning_allocator()
    # Single-run backfills are the point of the sync assets (one API window per run); Dagster still labels the
    # parameter beta, and repeating that on every load and run says nothing to our users.
    warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
    return _assembled(deployment_at_load())
