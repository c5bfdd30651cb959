"""The sync area's definitions: asset ``dds_jobs``, its checks, and the schedules ``dds_jobs_daily`` and
``dds_jobs_intraday``, over the deployment's partitions."""

from dagster import Definitions

from pipeline.defs.partitions import daily_partitions, dds_partitions
from pipeline.defs.sync.assets import build_sync_assets
from pipeline.defs.sync.checks import ended_not_before_created, no_duplicate_keys
from pipeline.defs.sync.days_at_risk import build_coverage_check
from pipeline.defs.sync.schedules import build_daily_schedule, build_intraday_schedule, sync_freshness_policy
from pipeline.config import Deployment


def build_sync_definitions(deployment: Deployment) -> Definitions:
    intraday = build_intraday_schedule(deployment.intraday_minutes, deployment.targets)
    return Definitions(
        assets=[build_sync_assets(dds_partitions(deployment), deployment.targets,
                                  sync_freshness_policy(deployment.intraday_minutes))],
        asset_checks=[no_duplicate_keys, ended_not_before_created,
                      build_coverage_check(deployment.start_date, deployment.projects_shown())],
        schedules=[build_daily_schedule(daily_partitions(deployment.start_date), deployment.targets),
                   *([intraday] if intraday else [])],
    )
