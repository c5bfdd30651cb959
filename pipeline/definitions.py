"""The one Dagster ``Definitions`` object, ``defs``: assets, checks, jobs, schedules and resources, assembled.

Resources read the docs/configuration.md variables; secrets go in as ``EnvVar`` so Dagster records the variable's name,
never its value. All steps run in one process: a run pays Python and Dagster start-up once.
"""

import sqlalchemy as sa
from dagster import Definitions, EnvVar

from pipeline.api.credentials import ENV_VARIABLES
from pipeline.defs.alerts.assets import AlertsResource, build_alerts_after_failure, build_alerts_asset
from pipeline.defs.sync.assets import build_dds_assets
from pipeline.defs.sync.checks import (
    ended_not_before_created,
    no_duplicate_keys,
    parquet_matches_warehouse,
)
from pipeline.defs.console import quiet_failures_in_process_executor
from pipeline.defs.sync.days_at_risk import build_coverage_check
from pipeline.defs.snapshots.verify_job import dds_parquet_verify
from pipeline.defs.partitions import daily_partitions, dds_partitions
from pipeline.defs.report.assets import ReportStoreResource, build_report_asset
from pipeline.defs.resources import (
    DdsTaskCenterResource,
    ParquetSnapshotResource,
    WarehouseResource,
)
from pipeline.defs.sync.schedules import build_daily_schedule, build_intraday_schedule, sync_freshness_policy
from pipeline.memory import use_returning_allocator
from pipeline.report.build import report_scope, reports_location
from pipeline.settings import ALERT_URLS_VARIABLE, Settings, settings_at_load


def dds_api_resource(settings: Settings) -> DdsTaskCenterResource:
    # Only the variables that are set: EnvVar of an unset variable fails the resource even when unused.
    credentials = {field: EnvVar(var) for field, var in ENV_VARIABLES.items() if var in settings.credential_variables}
    return DdsTaskCenterResource(
        project_id=settings.project_id or "",
        region=settings.region or "",
        endpoint=settings.endpoint or "",
        max_concurrency=settings.max_concurrency,
        max_rate=settings.max_rate,
        retry_budget_seconds=settings.retry_budget_seconds,
        ca_bundle=settings.ca_bundle,
        allow_insecure_http=settings.allow_insecure_http,
        **credentials,
    )


def warehouse_url_config(settings: Settings) -> str:
    """The warehouse URL as Dagster should record it: ``EnvVar("DDS_WAREHOUSE_URL")`` when it holds a password.

    Dagster stores a resource's configured values in every run's job snapshot and shows them in its UI; a
    PostgreSQL password in the URL would be stored in plain text there.
    """
    if settings.warehouse_url_from_env and sa.engine.make_url(settings.warehouse_url).password:
        return EnvVar("DDS_WAREHOUSE_URL")
    return settings.warehouse_url


def alerts_resource(settings: Settings) -> AlertsResource:
    """The alerts' resource: the URLs (tokens, passwords) as ``EnvVar``, so Dagster never stores them."""
    return AlertsResource(
        urls=EnvVar(ALERT_URLS_VARIABLE) if settings.alert_destinations else "",
        tasks=",".join(settings.alert_tasks),
        window_hours=settings.alert_window_hours,
        intraday_minutes=settings.intraday_minutes,
    )


def build_definitions(settings: Settings) -> Definitions:
    """Partitions by day, or by day and target when ``settings`` lists targets (DDS_TARGETS_FILE)."""
    projects = {target.name: target.project_id for target in settings.targets} or (
        {settings.project_id: settings.project_id} if settings.project_id else None)
    intraday = build_intraday_schedule(settings.intraday_minutes, settings.targets)
    # With alerts on, a failed sync still reports (its run's own alerts step is skipped): alerts_asset.py.
    alerts_job, after_failure = build_alerts_after_failure()
    on_failure = {"jobs": [alerts_job], "sensors": [after_failure]} if settings.alert_destinations else {}
    return Definitions(
        assets=[*build_dds_assets(dds_partitions(settings), settings.targets,
                                  sync_freshness_policy(settings.intraday_minutes)),
                build_report_asset(report_scope(settings)), build_alerts_asset(settings.start_date, projects)],
        jobs=[dds_parquet_verify, *on_failure.get("jobs", [])],
        sensors=on_failure.get("sensors", []),
        asset_checks=[no_duplicate_keys, ended_not_before_created, parquet_matches_warehouse,
                      build_coverage_check(settings.start_date, projects)],
        schedules=[build_daily_schedule(daily_partitions(settings.start_date), settings.targets,
                                        settings.project_id), *([intraday] if intraday else [])],
        resources={
            "dds_api": dds_api_resource(settings),
            "warehouse": WarehouseResource(url=warehouse_url_config(settings), setting=settings.warehouse_setting),
            "parquet": ParquetSnapshotResource(root=settings.parquet_root, setting=settings.parquet_setting),
            "alerts": alerts_resource(settings),
            "reports": ReportStoreResource(location=reports_location(settings.data_dir, settings.parquet_root)),
        },
        # In process, as Dagster's in_process_executor; a run failing on one of our one-line errors prints it
        # without Dagster's frames (pipeline/defs/console.py).
        executor=quiet_failures_in_process_executor,
    )


# The one place where the environment is read and the process is set up when the definitions load.
use_returning_allocator()
defs = build_definitions(settings_at_load())
