"""The asset ``dds_jobs_alerts`` and its check ``alerts_delivered``: each materialization sends the alerts not yet
sent (pipeline/alerts/) and records them in the warehouse table ``dds_alerts``.

Unpartitioned and downstream of ``dds_jobs``: the schedules materialize it after their sync, and
``dagster asset materialize -m pipeline.definitions --select dds_jobs_alerts`` sends by hand. A destination that
cannot be reached never fails the materialization: its alerts stay pending (the metadata counts them), a warning
names it masked, and the WARN check ``alerts_delivered`` shows it in the UI until a later pass delivers them.
"""

from collections.abc import Mapping
from datetime import date, datetime, timezone

from dagster import (
    AssetCheckResult,
    AssetSelection,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    SkipReason,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
    run_failure_sensor,
)

from pipeline.alerts.dispatch import AlertRules, PassOutcome, run_pass
from pipeline.defs.resources import AlertsResource, WarehouseResource
from pipeline.defs.steps import SYNC_ASSET, synced_dds_jobs
from pipeline.config import alert_task_patterns

ALERTS_ASSET = "dds_jobs_alerts"
ALERTS_DELIVERED = "alerts_delivered"
ALERTS_JOB = "dds_jobs_alerts_job"
AFTER_FAILURE_SENSOR = "dds_jobs_alerts_after_failure"


def build_alerts_asset(first_day: date, projects: Mapping[str, str] | None) -> AssetsDefinition:
    """``dds_jobs_alerts`` over the days from ``first_day`` of ``projects`` (name shown -> project id; None: every
    project the sync ledger holds)."""

    @asset(
        name=ALERTS_ASSET,
        deps=[SYNC_ASSET],
        group_name="dds",
        kinds={"apprise"},
        check_specs=[AssetCheckSpec(ALERTS_DELIVERED, asset=ALERTS_ASSET,
                                    description="Every alert of the latest pass was delivered (WARN: a destination "
                                    "that could not be reached keeps its alerts pending for the next pass).")],
        description="Sends the alerts not yet sent (failed jobs, days about to leave the DDS API unsynced, failing "
        "targets) to DDS_ALERT_URLS, exactly once per destination, recorded in the warehouse table dds_alerts.",
    )
    def dds_jobs_alerts(
        context: AssetExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource
    ) -> MaterializeResult:
        now = datetime.now(timezone.utc)
        rules = AlertRules(first_day=first_day, projects=projects, window_hours=alerts.window_hours,
                           task_patterns=alert_task_patterns(alerts.tasks), intraday_minutes=alerts.intraday_minutes)
        targets = alerts.destinations()
        if not targets:
            context.log.info("alerts are off: DDS_ALERT_URLS is not set")
        outcome = run_pass(warehouse.get(), rules, targets, now, send=alerts.send)
        _log(context, outcome)
        return MaterializeResult(metadata=_metadata(outcome, bool(targets)), check_results=[_check(outcome)])

    return dds_jobs_alerts


def _log(context: AssetExecutionContext, outcome: PassOutcome) -> None:
    for done in outcome.destinations:
        if done.failure:
            context.log.warning(f"alerts to {done.name} not delivered ({done.failure}); {done.pending} alert(s) stay "
                                "pending and are retried at the next materialization")
        if done.given_up:
            context.log.error(f"{done.given_up} alert(s) to {done.name} given up: undelivered for 24 hours")
        if done.sent_messages:
            context.log.info(f"{done.sent_alerts} alert(s) sent to {done.name} in {done.sent_messages} message(s)")


def _metadata(outcome: PassOutcome, enabled: bool) -> dict[str, object]:
    rows = [f"| {d.name} | {d.new} | {d.sent_alerts} | {d.pending} | {d.given_up} | "
            f"{(d.failure or 'delivered').replace('|', '/')} |" for d in outcome.destinations]
    table = "| destination | new | sent | pending | given up | last delivery |\n|---|---|---|---|---|---|\n"
    return {
        "enabled": enabled,
        "destinations": len(outcome.destinations),
        "new_alerts": outcome.total("new"),
        "sent_alerts": outcome.total("sent_alerts"),
        "sent_messages": outcome.total("sent_messages"),
        "pending": outcome.total("pending"),
        "given_up": outcome.total("given_up"),
        "delivery": MetadataValue.md(table + "\n".join(rows) if rows else "Alerts are off (DDS_ALERT_URLS)."),
    }


def _check(outcome: PassOutcome) -> AssetCheckResult:
    failed = outcome.failures
    given_up = [d for d in outcome.destinations if d.given_up]
    problems = [f"{d.name}: {d.pending} pending ({d.failure})" for d in failed]
    problems += [f"{d.name}: {d.given_up} given up" for d in given_up]
    return AssetCheckResult(
        check_name=ALERTS_DELIVERED,
        passed=not problems,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(problems) if problems else "every alert of this pass was delivered",
        metadata={"pending": outcome.total("pending"), "undelivered_destinations": len(failed)},
    )


def build_alerts_after_failure() -> tuple[object, SensorDefinition]:
    """The job ``dds_jobs_alerts_job`` and the sensor that runs it after a run syncing dds_jobs failed.

    A failed sync step skips its run's dds_jobs_alerts step (Dagster runs a step after its upstream only): without
    this, a target whose every sync fails would never be reported failing. On by default, for a deployment that set
    DDS_ALERT_URLS (pipeline/defs/alerts/definitions.py adds it only then); it needs the daemon, as the schedules do."""
    alerts_job = define_asset_job(ALERTS_JOB, selection=AssetSelection.assets(ALERTS_ASSET),
                                  description="dds_jobs_alerts alone: the alerts sent after a failed sync.")

    @run_failure_sensor(name=AFTER_FAILURE_SENSOR, request_job=alerts_job,
                        default_status=DefaultSensorStatus.RUNNING,
                        description="After a run syncing dds_jobs failed, materializes dds_jobs_alerts, so that its "
                        "failed jobs and a failing target are reported even though the run's own step was skipped.")
    def dds_jobs_alerts_after_failure(context: RunFailureSensorContext):
        run = context.dagster_run
        if not synced_dds_jobs(run, ALERTS_JOB):
            return SkipReason(f"run {run.run_id} did not sync dds_jobs")
        return RunRequest(run_key=f"after failed run {run.run_id}")

    return alerts_job, dds_jobs_alerts_after_failure
