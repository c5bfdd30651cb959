"""The asset ``dds_jobs_report``: the analyst report (pipeline/report/) of the days synced, rebuilt after each sync.

Unpartitioned and downstream of ``dds_jobs``: the daily schedule materializes it in the same run as the sync,
after it. It writes ``dds-jobs-report-<last day>.html`` to the ``reports`` resource's location (a local folder,
or ``s3://bucket/prefix/reports`` next to the Parquet snapshots) and shows its path and headline figures.
"""

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from pipeline.defs.resources import ReportStoreResource, WarehouseResource
from pipeline.defs.steps import SYNC_ASSET
from pipeline.report.build import report_file_name, write_report
from pipeline.report.period import DEFAULT_DAYS, MAX_PERIOD_DAYS, ReportScope, default_period
from pipeline.report.synced_days import synced_period

if TYPE_CHECKING:
    from pipeline.report.figures import ReportFigures

REPORT_ASSET = "dds_jobs_report"


class ReportConfig(Config):
    """The report's period: the ``days`` UTC days up to yesterday, or by default the days synced (of the last
    DEFAULT_DAYS; up to today when an intraday sync has stored part of it)."""

    days: int | None = Field(default=None, ge=1, le=MAX_PERIOD_DAYS,
                             description="how many UTC days up to yesterday the report covers (default: the days "
                             f"synced, of the last {DEFAULT_DAYS})")


def headline_markdown(figures: "ReportFigures") -> str:
    """The headline figures as a Markdown table, for the UI."""
    rows = "".join(f"| {name} | {value.replace('|', '/')} |\n" for name, value in figures.headline().items())
    return "| figure | value |\n|---|---|\n" + rows


def build_report_asset(scope: ReportScope) -> AssetsDefinition:
    """``dds_jobs_report`` over ``scope`` (every project's jobs, with the configured projects' coverage)."""

    @asset(
        name=REPORT_ASSET,
        deps=[SYNC_ASSET],
        group_name="dds",
        kinds={"html"},
        description="Self-contained HTML report of the days synced of dds_jobs: time since each instance's last "
        "successful backup, failure rate per day and by task name, jobs per day by status, durations, backups, "
        "Running jobs and sync coverage. Rebuilt after each sync.",
    )
    def dds_jobs_report(
        context: AssetExecutionContext, config: ReportConfig, warehouse: WarehouseResource,
        reports: ReportStoreResource,
    ) -> MaterializeResult:
        now = datetime.now(timezone.utc)
        store = warehouse.get()
        period = synced_period(store, scope, now) if config.days is None else default_period(now, config.days)
        destination = f"{reports.location.rstrip('/')}/{report_file_name(period.last_day)}"
        written = write_report(store, period, scope, destination, now, s3=reports.s3())
        figures = written.figures
        context.log.info(f"report of {period} written to {written.location} ({written.size_bytes:,} bytes)")
        return MaterializeResult(metadata={
            "path": MetadataValue.path(written.location),
            "headline": MetadataValue.md(headline_markdown(figures)),
            "first_day": period.first_day.isoformat(),
            "last_day": period.last_day.isoformat(),
            "jobs": figures.jobs,
            "failed_jobs": figures.jobs_in_status("Failed"),
            "running_jobs": figures.running.total,
            "failed_backups": figures.failed_backups.total,
            "instances_without_backup": figures.backup_freshness.without_backup,
            "instances_backup_overdue": figures.backup_freshness.overdue,
            "days_not_synced": len(figures.coverage.not_synced()),
            "size_bytes": written.size_bytes,
        })

    return dds_jobs_report
