"""What the steps of every area of ``defs/`` share: the Dagster pool of the steps that call the DDS API or write
Parquet, the asset keys one area names of another's (strings, so no area imports another's definitions), the
expected errors ending a step in one line, the run-wide figures recorded once per run, and a run's days per target.
"""

import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    DagsterRun,
    Failure,
    MetadataValue,
    MultiPartitionsDefinition,
    TableColumn,
    TableRecord,
    TableSchema,
)

from pipeline.api.errors import DdsApiError
from pipeline.api.iam import IamError
from pipeline.defs.console import ERROR_CHAIN_PREFIX, pipeline_logs_in_step_log, quiet_failure_frames
from pipeline.defs.partitions import days_by_target, days_of
from pipeline.defs.resources import WarehouseResource
from pipeline.snapshots.errors import SnapshotWriteError
from pipeline.targets import Target
from pipeline.values import ConfigError

# Steps that call the DDS API or write its Parquet snapshots share this Dagster pool; its limit (README) keeps
# backfills from throttling the account and serializes writers of the same Parquet day.
DDS_API_POOL = "dds_api"
SYNC_ASSET = AssetKey("dds_jobs")
PARQUET_ASSET = AssetKey("dds_jobs_parquet")
ALERTS_ASSET = AssetKey("dds_jobs_alerts")
REPORT_ASSET = AssetKey("dds_jobs_report")
# After a run over several targets failed on some, the snapshots area's sensor writes the others' Parquet in runs
# tagged with the failed run (pipeline/defs/snapshots/after_failure.py); the sync step names it in its failure.
PARQUET_AFTER_FAILURE_SENSOR = "dds_jobs_parquet_after_partial_failure"
SNAPSHOTS_OF_RUN_TAG = "dds/snapshots_of_run"
# The field of dds_jobs' run summary naming the days its sync changed outside the run's partitions, per target
# ({"refreshed": [...], "moved_out_of": [...]}): the Parquet step reads it from the run's events.
CHANGED_DAYS = "days_changed_outside_the_run"
# Errors whose one line tells the user what to fix (a setting, the credentials, the API's answer, a Parquet folder
# that cannot be written): the run fails with that line, not with a traceback of the code that met them.
EXPECTED_ERRORS = (ConfigError, DdsApiError, IamError, SnapshotWriteError)


@contextmanager
def expected_errors_as_failures(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[None]:
    """Ends the step with the error's one line (the expected errors, and the warehouse lost in the middle of the
    run): logged on its own, then as the description of Dagster's ``Failure``, which the CLI and the UI show
    (pipeline/defs/console.py keeps Dagster's frames off the console). The chain of causes goes to the debug log.
    Retrying would not change it. Meanwhile the package's own log lines (retries, a view left busy) go to the step's
    log (pipeline/defs/console.py)."""
    try:
        with pipeline_logs_in_step_log(context.log):
            yield
    except Exception as exc:
        line = one_line_error(exc) if isinstance(exc, EXPECTED_ERRORS) else warehouse.failure_line(exc)
        if line is None:
            raise
        quiet_failure_frames(context.log)
        context.log.debug(f"{ERROR_CHAIN_PREFIX}{line}\n{''.join(traceback.format_exception(exc))}")
        context.log.error(line)
        raise Failure(description=line, allow_retries=False) from None


def one_line_error(exc: BaseException) -> str:
    """``configuration error: ...`` for a setting, else the error's own first line."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"configuration error: {text}" if isinstance(exc, ConfigError) else text


def as_metadata(values: Mapping[str, object]) -> dict[str, object]:
    """Dagster metadata of a summary: a mapping of counts (retries by kind) as a table, lists as JSON, the rest as
    given."""
    def shown(value: object) -> object:
        if isinstance(value, Mapping):
            return MetadataValue.table(
                records=[TableRecord({"kind": str(kind), "count": count}) for kind, count in value.items()],
                schema=TableSchema(columns=[TableColumn("kind", "string"), TableColumn("count", "int")]),
            )
        return MetadataValue.json(value) if isinstance(value, list) else value

    return {name: shown(value) for name, value in values.items()}


def record_run_summary(context: AssetExecutionContext, asset_key: AssetKey, summary: Mapping[str, object]) -> None:
    """The run-wide figures, once per run: an observation of the asset (in the run's events and the asset's
    history), never repeated on each day's partition."""
    context.log_event(AssetObservation(asset_key=asset_key, metadata=as_metadata(summary)))


def synced_dds_jobs(run: DagsterRun, own_job: str) -> bool:
    """Whether ``run`` (a failed run a sensor looks at) was one syncing dds_jobs, not one of ``own_job`` (the
    sensor's own job: its failures ask for nothing)."""
    # No selection (None, or empty in an in-process run): the job's every asset, dds_jobs among them.
    selection = run.asset_selection
    return run.job_name != own_job and not (selection and SYNC_ASSET not in selection)


def run_plan(context: AssetExecutionContext, targets: Sequence[Target]) -> dict[Target, list[date]]:
    """The run's days per target: the run's days of the one target of plain daily partitions (the project of
    DDS_PROJECT_ID), or the days of each target its ``YYYY-MM-DD|target`` keys name."""
    partitions_def = context.assets_def.partitions_def
    if not isinstance(partitions_def, MultiPartitionsDefinition):
        [target] = targets
        return {target: days_of(context.partition_time_window)}
    plan = days_by_target(partitions_def, context.partition_keys)
    if not plan:
        raise ConfigError("the run's partition range holds no partition: give a range of days of one target, "
                          "such as 2026-11-01|sg-prod...2026-11-07|sg-prod")
    by_name = {target.name: target for target in targets}
    return {by_name[name]: days for name, days in plan.items()}
