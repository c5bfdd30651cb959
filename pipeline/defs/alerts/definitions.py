"""The alerts area's definitions: asset ``dds_jobs_alerts`` and its check ``alerts_delivered``; with alerts on
(DDS_ALERT_URLS), the job and sensor that send them after a failed sync too."""

from dagster import Definitions

from pipeline.defs.alerts.assets import build_alerts_after_failure, build_alerts_asset
from pipeline.config import Deployment


def build_alerts_definitions(deployment: Deployment) -> Definitions:
    asset = build_alerts_asset(deployment.start_date, deployment.projects_shown())
    if not deployment.alert_destinations:
        return Definitions(assets=[asset])
    # With alerts on, a failed sync still reports (its run's own alerts step is skipped): assets.py.
    alerts_job, after_failure = build_alerts_after_failure()
    return Definitions(assets=[asset], jobs=[alerts_job], sensors=[after_failure])
