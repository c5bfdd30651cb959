"""The assets: ``dds_jobs`` (warehouse table) and ``dds_jobs_parquet`` (Parquet snapshots), one partition per UTC day
(per UTC day and target when the deployment reads several projects).

A run may cover many days (single-run backfill policy): the API is called once for the run's whole window,
in slices of at most 30 days, and every day gets its own materialization with its own figures (what Dagster plots
over the partitions). The run-wide figures (window, rows inserted, requests, seconds) are given once per run: a line
in the run's log and an observation of the asset, never repeated on each day.
"""

import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from pipeline.api.client import FetchStats, Page, throttling_warning
from pipeline.api.windows import FULL
from pipeline.api.credentials import STATIC_TOKEN_WARNING
from pipeline.api.errors import DdsApiError
from pipeline.api.iam import IamError
from pipeline.defs.console import ERROR_CHAIN_PREFIX, quiet_failure_frames
from pipeline.defs.partitions import (
    day_key,
    days_by_target,
    days_of,
    partition_key,
    run_moment,
)
from pipeline.defs.resources import (
    DdsTaskCenterResource,
    ParquetSnapshotResource,
    WarehouseResource,
)
from pipeline.snapshots.errors import SnapshotWriteError
from pipeline.targets import Target
from pipeline.values import ConfigError

if TYPE_CHECKING:
    from pipeline.running import RunningRefresh
    from pipeline.snapshots.store import ParquetStore
    from pipeline.sync import SyncResult

# Single-run backfills are the point of these assets (one API window per run); Dagster still labels the
# parameter beta, and repeating that on every load and run says nothing to our users.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)

# Steps that call the DDS API or write its Parquet snapshots share this Dagster pool; its limit (README) keeps
# backfills from throttling the account and serializes writers of the same Parquet day.
DDS_API_POOL = "dds_api"
STORED_MATCHES_API = "stored_count_matches_api"
PARQUET_ASSET = AssetKey("dds_jobs_parquet")
# Progress lines: often enough to watch a backfill, rare enough not to flood the run log.
PROGRESS_EVERY_SECONDS = 2.0
# Errors whose one line tells the user what to fix (a setting, the credentials, the API's answer, a Parquet folder
# that cannot be written): the run fails with that line, not with a traceback of the code that met them.
EXPECTED_ERRORS = (ConfigError, DdsApiError, IamError, SnapshotWriteError)


@contextmanager
def _expected_errors_as_failures(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[None]:
    """Ends the step with the error's one line (the expected errors, and the warehouse lost in the middle of the
    run): logged on its own, then as the description of Dagster's ``Failure``, which the CLI and the UI show
    (pipeline/defs/console.py keeps Dagster's frames off the console). The chain of causes goes to the debug log.
    Retrying would not change it."""
    try:
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


def _as_metadata(values: Mapping[str, object]) -> dict[str, object]:
    """Dagster metadata of a summary: a mapping of counts (retries by kind) as a table, the rest as given."""
    return {
        name: MetadataValue.table(
            records=[TableRecord({"kind": str(kind), "count": count}) for kind, count in value.items()],
            schema=TableSchema(columns=[TableColumn("kind", "string"), TableColumn("count", "int")]),
        ) if isinstance(value, Mapping) else value
        for name, value in values.items()
    }


def _record_run_summary(context: AssetExecutionContext, asset_key: AssetKey, summary: Mapping[str, object]) -> None:
    """The run-wide figures, once per run: an observation of the asset (in the run's events and the asset's
    history), never repeated on each day's partition."""
    context.log_event(AssetObservation(asset_key=asset_key, metadata=_as_metadata(summary)))


class _PageProgress:
    """Logs how far the fetch has come, at most every PROGRESS_EVERY_SECONDS."""

    def __init__(self, context: AssetExecutionContext):
        self._context = context
        self._jobs = 0
        self._last = time.monotonic()

    def __call__(self, page: Page, stats: FetchStats) -> None:
        self._jobs += len(page.jobs)
        if time.monotonic() - self._last >= PROGRESS_EVERY_SECONDS:
            self._last = time.monotonic()
            expected = f" of ~{page.total_count:,} in this slice" if page.total_count is not None else ""
            self._context.log.info(
                f"fetched {self._jobs:,} jobs in {stats.pages} pages{expected} "
                f"(slice from {page.slice.start:%Y-%m-%d}, {sum(stats.retries.values())} retries)"
            )


def _count_check(results: Mapping[str | None, "SyncResult"]) -> AssetCheckResult:
    """Stored jobs of each fully retained day (of each target) equal the distinct jobs the API returned for it.

    Days the API holds only in part, or no longer, cannot be compared: the store rightly holds more.
    """
    compared = {partition_key(d, target): s for target, result in results.items()
                for d, s in result.days.items() if s.coverage == FULL}
    mismatched = {str(key): f"{s.stored_jobs} stored, {s.api_jobs} from API" for key, s in compared.items()
                  if s.stored_jobs != s.api_jobs}
    return AssetCheckResult(
        check_name=STORED_MATCHES_API,
        passed=not mismatched,
        severity=AssetCheckSeverity.WARN,
        metadata={"days_compared": len(compared), "days_mismatched": len(mismatched),
                  "mismatches": MetadataValue.json(mismatched)},
    )


def _sync_one(
    context: AssetExecutionContext,
    dds_api: DdsTaskCenterResource,
    warehouse: WarehouseResource,
    target: Target | None,
    days: list[date],
    as_of: datetime,
) -> "tuple[SyncResult, RunningRefresh | None]":
    """Sync one project's days (``target`` None: the project of DDS_PROJECT_ID) as of ``as_of`` and record each
    day's figures. A run that syncs the day of ``as_of`` (today, so far) also looks up again the jobs of earlier
    days that were Running at their latest sync (pipeline/running.py)."""
    # The sync is imported by the runs that call it: it loads pandas and Arrow, which loading the definitions
    # (every `dg` command, every run's start) need not.
    from pipeline.running import refresh_running
    from pipeline.sync import sync_days

    client, auth_method = dds_api.client(target)
    named = f"target {target.name}: " if target else ""
    context.log.info(f"{named}DDS API {client.endpoint}, project {client.project_id}, authentication: {auth_method}")
    if auth_method == "token":
        context.log.warning(STATIC_TOKEN_WARNING)
    region = (target.region if target else dds_api.region) or None
    refresh = None
    with client:
        result = sync_days(client, warehouse.get(), days, now=as_of, region=region, on_page=_PageProgress(context),
                           run_id=context.run.run_id)
        if as_of.date() in days:
            refresh = refresh_running(client, warehouse.get(), as_of, days, region=region)
            context.log.info(f"{named}{refresh.summary_line()}")
    if result.gone_days:
        context.log.warning(
            f"{named}{len(result.gone_days)} day(s) from {day_key(result.gone_days[0])} to "
            f"{day_key(result.gone_days[-1])} are older than the DDS API's one-month retention: the source no longer "
            "holds them, nothing was fetched for them, and what is stored for them is left as it is"
        )
    for problem in result.problems:
        context.log.warning(f"{named}DDS job records: {problem}")
    if result.finished_changed:
        context.log.warning(f"{named}{result.finished_changed} finished job(s) changed their finished state on a "
                            f"complete record; first: {result.finished_sample}")
    target_name = target.name if target else None
    for day, day_sync in result.days.items():
        context.add_asset_metadata(day_sync.metadata(), partition_key=partition_key(day, target_name))
    context.log.info(f"{named}run summary: {result.summary_line()}")
    return result, refresh


def _run_plan(context: AssetExecutionContext, targets: Mapping[str, Target]) -> dict[Target | None, list[date]]:
    """The run's days per target; one entry keyed None when the deployment reads a single project."""
    if not targets:
        return {None: days_of(context.partition_time_window)}
    plan = days_by_target(context.assets_def.partitions_def, context.partition_keys)
    if not plan:
        raise ConfigError("the run's partition range holds no partition: give a range of days of one target, "
                          "such as 2026-11-01|sg-prod...2026-11-07|sg-prod")
    return {targets[name]: days for name, days in plan.items()}


def _sync_targets(
    context: AssetExecutionContext,
    dds_api: DdsTaskCenterResource,
    warehouse: WarehouseResource,
    parquet: ParquetSnapshotResource,
    targets: Mapping[str, Target],
) -> MaterializeResult:
    plan = _run_plan(context, targets)
    # One moment for every target of the run: a job created while the run pages is the next run's, for each.
    as_of = run_moment(context)
    results: dict[str | None, SyncResult] = {}
    refreshed: dict[Target | None, list[date]] = {}
    refreshes: dict[str | None, dict[str, object]] = {}
    failures: dict[str, str] = {}
    for target, days in plan.items():
        # Each target loads in its own transaction: one that fails (credentials, throttling, a region down)
        # leaves the others' loads in place, and is retried alone.
        try:
            name = target.name if target else None
            results[name], refresh = _sync_one(context, dds_api, warehouse, target, days, as_of)
            _refresh_moved_out_of(context, warehouse, parquet, results[name])
            if refresh is not None:
                refreshes[name] = refresh.metadata()
                if refresh.days:
                    refreshed[target] = refresh.days
        except Exception as exc:  # noqa: BLE001 - reported below, after the other targets are done
            if len(plan) == 1:
                raise
            failures[target.name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            context.log.error(f"target {target.name}: {failures[target.name]}")
    for name, result in results.items():
        _record_run_summary(context, context.asset_key, {**({"target": name} if name else {}), **result.metadata(),
                                                         **refreshes.get(name, {})})
    throttling = throttling_warning(result.stats for result in results.values() if result.stats)
    if throttling:
        context.log.warning(throttling)
    if refreshed:
        _record_refreshed_days(context, warehouse, parquet, refreshed)
    if failures:
        _record_healthy_targets(context, warehouse, parquet, plan, results)
        raise Failure(
            f"{len(failures)} of {len(plan)} targets failed ({', '.join(failures)}); the days of "
            f"{', '.join(str(name) for name in results) or 'no other target'} are stored and snapshotted",
            metadata={"failed_targets": MetadataValue.json(failures)},
        )
    return MaterializeResult(check_results=[_count_check(results)])


def _refresh_moved_out_of(
    context: AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource, result: "SyncResult"
) -> None:
    """Drop the stale copies the Parquet days the sync moved jobs out of hold (their created_at changed), at once:
    the Parquet step refreshes only the run's days, and no later sync would find these moves again."""
    from pipeline.sync import snapshot_days

    if not result.moved_out_of:
        return
    for day, done in snapshot_days(warehouse.get(), parquet.get(), [], result.moved_out_of).items():
        context.log.info(f"Parquet day {day_key(day)} refreshed: jobs stored on it now have another created_at day "
                         f"({done.rows:,} rows left{', previous files kept in the quarantine' if done.healed else ''})")


def _write_snapshots(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    store: "ParquetStore",
    plan: Mapping[Target | None, list[date]],
) -> tuple[list[tuple[str, dict[str, object]]], dict[date, int]]:
    """Write the Parquet snapshots of the plan's days: (partition key, metadata) per partition, and rows per day.

    A day's snapshot holds the day's jobs of every project, so each target's partition of the day points at it. A
    day whose files had gone wrong is healed from the warehouse: a warning names it, its files and the reason.
    """
    from pipeline.sync import snapshot_days

    refreshed = snapshot_days(warehouse.get(), store, sorted(set().union(*plan.values())))
    for day, done in refreshed.items():
        if done.healed:
            context.log.warning(
                f"Parquet day {day_key(day)} healed: {done.healed}; rewritten from the warehouse ({done.rows:,} rows), "
                f"its previous files kept in {', '.join(map(str, done.moved_aside)) or 'the quarantine'}"
            )
        if done.parquet_only:
            context.log.warning(
                f"Parquet day {day_key(day)} holds {done.parquet_only:,} job(s) although the warehouse holds none of "
                "that day: left as they are; `dds-tasks verify-parquet` reports such days"
            )
    partitions = [
        (partition_key(day, target.name if target else None),
         {**_plain(refreshed[day].metadata()), "path": MetadataValue.path(str(store.day_path(day)))})
        for target, target_days in plan.items() for day in target_days
    ]
    return partitions, {day: done.rows for day, done in refreshed.items()}


def _plain(metadata: Mapping[str, object]) -> dict[str, object]:
    """Metadata as Dagster takes it: lists as JSON."""
    return {key: MetadataValue.json(value) if isinstance(value, list) else value for key, value in metadata.items()}


def _record_healthy_targets(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    parquet: ParquetSnapshotResource,
    plan: Mapping[Target | None, list[date]],
    results: Mapping[str | None, "SyncResult"],
) -> None:
    """In a run where some targets failed: record the stored targets' days as materialized and write their Parquet
    snapshots here, since the run's Parquet step will not run after this one fails. The UI then shows only the
    failed target's days as failed, and a retry of that target alone completes the picture."""
    for name, result in results.items():
        for day, day_sync in result.days.items():
            context.log_event(AssetMaterialization(
                asset_key=context.asset_key, partition=partition_key(day, name),
                metadata=day_sync.metadata(),
            ))
    healthy = {target: days for target, days in plan.items() if target and target.name in results}
    if healthy:
        partitions, _ = _write_snapshots(context, warehouse, parquet.get(), healthy)
        for key, metadata in partitions:
            context.log_event(AssetMaterialization(asset_key=PARQUET_ASSET, partition=key, metadata=metadata))


def _record_refreshed_days(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    parquet: ParquetSnapshotResource,
    refreshed: Mapping[Target | None, list[date]],
) -> None:
    """The earlier days whose Running jobs were looked up again lie outside the run's partitions: their Parquet
    snapshots are rewritten here (the run's Parquet step writes only its own days), and both assets' partitions
    of them recorded as materialized, so the UI and the snapshots show the jobs' final state."""
    partitions, _ = _write_snapshots(context, warehouse, parquet.get(), refreshed)
    for key, metadata in partitions:
        context.log_event(AssetMaterialization(asset_key=context.asset_key, partition=key,
                                               metadata={"refreshed_running_jobs": True}))
        context.log_event(AssetMaterialization(asset_key=PARQUET_ASSET, partition=key, metadata=metadata))


def _snapshot(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    parquet: ParquetSnapshotResource,
    targets: Mapping[str, Target],
) -> MaterializeResult:
    store = parquet.get()
    partitions, written = _write_snapshots(context, warehouse, store, _run_plan(context, targets))
    for key, metadata in partitions:
        context.add_asset_metadata(metadata, partition_key=key)
    context.log.info(f"run summary: {sum(written.values()):,} rows over {len(written)} day(s) written under {store.root}")
    _record_run_summary(context, PARQUET_ASSET, {"days": len(written), "rows": sum(written.values()),
                                                 "root": MetadataValue.path(str(store.root))})
    return MaterializeResult()


def build_dds_assets(
    partitions_def: PartitionsDefinition, targets: Sequence[Target] = (), freshness_policy: FreshnessPolicy | None = None
) -> tuple[AssetsDefinition, AssetsDefinition]:
    """``dds_jobs`` and ``dds_jobs_parquet`` over ``partitions_def`` (days, or days x ``targets``); ``dds_jobs``
    shows late in the UI when not stored within ``freshness_policy``."""
    by_name = {target.name: target for target in targets}
    # Any range of partitions as one run: one API window per target and run.
    shared = {"partitions_def": partitions_def, "backfill_policy": BackfillPolicy.single_run(), "group_name": "dds"}

    @asset(
        name="dds_jobs",
        pool=DDS_API_POOL,
        kinds={"sql"},
        freshness_policy=freshness_policy,
        **shared,
        check_specs=[AssetCheckSpec(STORED_MATCHES_API, asset="dds_jobs",
                                    description="Stored jobs per day equal the distinct jobs the API returned")],
        description="DDS task-center jobs, one row per (project_id, id) with its latest state, in the SQL warehouse. "
        "Partition = UTC day of created_at (of one target, with several). Days older than the API's one-month "
        "retention are kept as stored.",
    )
    def dds_jobs(
        context: AssetExecutionContext,
        dds_api: DdsTaskCenterResource,
        warehouse: WarehouseResource,
        parquet: ParquetSnapshotResource,
    ) -> MaterializeResult:
        with _expected_errors_as_failures(context, warehouse):
            return _sync_targets(context, dds_api, warehouse, parquet, by_name)

    @asset(
        name="dds_jobs_parquet",
        deps=[dds_jobs],
        # Object storage (DDS_PARQUET_ROOT=s3://...) has no locks: writers of the same day queue on the pool instead.
        pool=DDS_API_POOL,
        kinds={"parquet"},
        **shared,
        description="Hive-partitioned Parquet snapshots of dds_jobs: {root}/dds_jobs/created_date=YYYY-MM-DD/, "
        "the latest state of each job, written from the warehouse.",
    )
    def dds_jobs_parquet(
        context: AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource
    ) -> MaterializeResult:
        with _expected_errors_as_failures(context, warehouse):
            return _snapshot(context, warehouse, parquet, by_name)

    return dds_jobs, dds_jobs_parquet

