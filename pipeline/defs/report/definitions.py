"""The report area's definitions: asset ``dds_jobs_report``."""

from dagster import Definitions

from pipeline.defs.report.assets import build_report_asset
from pipeline.report.build import report_scope
from pipeline.config import Deployment


def build_report_definitions(deployment: Deployment) -> Definitions:
    return Definitions(assets=[build_report_asset(report_scope(deployment))])
