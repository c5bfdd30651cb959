"""The report area's definitions: asset ``dds_jobs_report``."""

from dagster import Definitions

from pipeline.defs.report.assets import build_report_asset
from pipeline.report.build import report_scope
from pipeline.settings import Settings


def build_report_definitions(deployment: Settings) -> Definitions:
    return Definitions(assets=[build_report_asset(report_scope(deployment))])
