"""The asset ``dds_jobs`` (the warehouse table), one partition per UTC day (per UTC day and target when the
deployment reads several projects). Its Parquet snapshots, ``dds_jobs_parquet``, are the snapshots area's
(pipeline/defs/snapshots/assets.py): the run summary below tells that step which days outside the run changed.

A run may cover many days (single-run backfill policy): the API is called once for the run's whole window,
in slices of at most 30 days, and every day gets its own materialization with its own figures (what Dagster plots
over the partitions). The run-wide figures (window, rows inserted, requests, seconds) are given once per run: a line
in the run's log and an observation of the asset, never repeated on each day.
"""

import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from pipeline.api.client import FetchStats, Page, throttling_warning
from pipeline.api.windows import FULL
from pipeline.api.credentials import STATIC_TOKEN_WARNING
from pipeline.defs.partitions import REGION_TAG, TARGET_TAG, day_key, run_moment, target_partition_key
from pipeline.defs.resources import (
    DdsTaskCenterResource,
    WarehouseResource,
)
from pipeline.defs.steps import (
    CHANGED_DAYS,
    DDS_API_POOL,
    PARQUET_AFTER_FAILURE_SENSOR,
    expected_errors_as_failures,
    record_run_summary,
    run_plan,
)
from pipeline.targets import Target

if TYPE_CHECKING:
    from pipeline.running import RunningRefresh
    from pipeline.sync import SyncResult

STORED_MATCHES_API = "stored_count_matches_api"
# Progress lines: often enough to watch a backfill, rare enough not to flood the run log.
PROGRESS_EVERY_SECONDS = 2.0


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


def _count_check(results: Mapping[Target, "SyncResult"]) -> AssetCheckResult:
    """Stored jobs of each fully retained day (of each target) equal the distinct jobs the API returned for it.

    Days the API holds only in part, or no longer, cannot be compared: the store rightly holds more.
    """
    compared = {target_partition_key(d, target): s for target, result in results.items()
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
    target: Target,
    days: list[date],
    as_of: datetime,
) -> "tuple[SyncResult, RunningRefresh | None]":
    """Sync one target's days (of DDS_TARGETS_FILE, or the project of DDS_PROJECT_ID) as of ``as_of`` and record
    each day's figures. A run that syncs the day of ``as_of`` (today, so far) also looks up again the jobs of earlier
    days that were Running at their latest sync (pipeline/running.py)."""
    # The sync is imported by the runs that call it: it loads pandas and Arrow, which loading the definitions
    # (every `dg` command, every run's start) need not.
    from pipeline.running import refresh_running
    from pipeline.sync import sync_days

    client, auth_method = dds_api.client(target)
    named = f"target {target.name}: " if target.in_targets_file else ""
    context.log.info(f"{named}DDS API {client.endpoint}, project {client.project_id}, authentication: {auth_method}")
    if auth_method == "token":
        context.log.warning(STATIC_TOKEN_WARNING)
    region = dds_api.source(target).region or None
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
    for day, day_sync in result.days.items():
        context.add_asset_metadata(day_sync.metadata(), partition_key=target_partition_key(day, target))
    context.log.info(f"{named}run summary: {result.summary_line()}")
    return result, refresh


def _sync_targets(
    context: AssetExecutionContext,
    dds_api: DdsTaskCenterResource,
    warehouse: WarehouseResource,
    targets: Sequence[Target],
) -> MaterializeResult:
    plan = run_plan(context, targets)
    _tag_run(context, plan)
    # One moment for every target of the run: a job created while the run pages is the next run's, for each.
    as_of = run_moment(context)
    results: dict[Target, SyncResult] = {}
    changed: dict[Target, dict[str, list[str]]] = {}
    refreshes: dict[Target, dict[str, object]] = {}
    failures: dict[str, str] = {}
    for target, days in plan.items():
        # Each target loads in its own transaction: one that fails (credentials, throttling, a region down)
        # leaves the others' loads in place, and is retried alone.
        try:
            results[target], refresh = _sync_one(context, dds_api, warehouse, target, days, as_of)
            if refresh is not None:
                refreshes[target] = refresh.metadata()
            changed[target] = _changed_days(results[target], refresh)
            _record_refreshed_days(context, target, refresh)
        except Exception as exc:  # noqa: BLE001 - reported below, after the other targets are done
            if len(plan) == 1:
                raise
            failures[target.name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            context.log.error(f"target {target.name}: {failures[target.name]}")
    for target, result in results.items():
        record_run_summary(context, context.asset_key, {
            "target": target.name, **result.metadata(), **refreshes.get(target, {}),
            CHANGED_DAYS: MetadataValue.json(changed[target]),
        })
    throttling = throttling_warning(result.stats for result in results.values() if result.stats)
    if throttling:
        context.log.warning(throttling)
    if failures:
        _record_stored_targets(context, warehouse, plan, results, changed, list(failures))
        stored = ", ".join(target.name for target in results)
        raise Failure(
            f"{len(failures)} of {len(plan)} targets failed ({', '.join(failures)}); "
            + (f"the days of {stored} are stored, and their Parquet snapshots are written by the sensor "
               f"{PARQUET_AFTER_FAILURE_SENSOR}" if results else "no other target was stored"),
            metadata={"failed_targets": MetadataValue.json(failures)},
        )
    return MaterializeResult(check_results=[_count_check(results)])


def _tag_run(context: AssetExecutionContext, plan: Mapping[Target, list[date]]) -> None:
    """A run of one target carries it (and its region) as run tags, launched by hand too (the schedules tag theirs
    when they ask for it): the UI filters the runs by them. A run over several targets has no one target."""
    if len(plan) != 1:
        return
    [target] = plan
    tags = {TARGET_TAG: target.name, REGION_TAG: target.region}
    missing = {name: value for name, value in tags.items() if value and name not in context.run.tags}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)


def _changed_days(result: "SyncResult", refresh: "RunningRefresh | None") -> dict[str, list[str]]:
    """The days outside the run's partitions whose stored jobs this sync changed: those whose Running jobs were
    looked up again, and those the sync moved jobs out of (their created_at changed). Their Parquet snapshots
    are stale; no later sync would find these changes again."""
    return {"refreshed": [day_key(day) for day in (refresh.days if refresh else [])],
            "moved_out_of": [day_key(day) for day in result.moved_out_of]}


def _record_refreshed_days(context: AssetExecutionContext, target: Target, refresh: "RunningRefresh | None") -> None:
    """The earlier days whose Running jobs were looked up again lie outside the run's partitions: their partitions
    are recorded as materialized here (the Parquet step rewrites and records their snapshots), so the UI shows the
    jobs' final state."""
    for day in refresh.days if refresh else []:
        context.log_event(AssetMaterialization(asset_key=context.asset_key,
                                               partition=target_partition_key(day, target),
                                               metadata={"refreshed_running_jobs": True}))


def _record_stored_targets(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    plan: Mapping[Target, list[date]],
    results: Mapping[Target, "SyncResult"],
    changed: Mapping[Target, Mapping[str, list[str]]],
    failed: Sequence[str],
) -> None:
    """In a run where some targets failed: record the stored targets' days as materialized, so the UI shows only
    the failed target's days as failed and a retry of that target alone completes the picture.

    The run's Parquet step will not run after this one fails (Dagster 1.13 skips a step whose upstream step failed),
    and a step's output would materialize every partition of its run, the failed target's too. The stored days'
    snapshots are left to the snapshots area's sensor (PARQUET_AFTER_FAILURE_SENSOR), which runs dds_jobs_parquet
    over them; until then the sync ledger holds them as due, so that a deployment without the daemon writes them
    on its next sync."""
    from pipeline.sync import record_snapshots_pending

    for target, result in results.items():
        for day, day_sync in result.days.items():
            context.log_event(AssetMaterialization(
                asset_key=context.asset_key, partition=target_partition_key(day, target), metadata=day_sync.metadata(),
            ))
    stored = {target: days for target, days in plan.items() if target in results}
    outside = {date.fromisoformat(day) for target in stored for days in changed[target].values() for day in days}
    record_snapshots_pending(warehouse.get(), sorted(set().union(*stored.values(), outside)),
                             f"not written: run {context.run.run_id} failed on target(s) {', '.join(failed)} before "
                             f"its Parquet step; the sensor {PARQUET_AFTER_FAILURE_SENSOR} or the next sync writes it")


def build_sync_assets(
    partitions_def: PartitionsDefinition,
    targets: Sequence[Target],
    freshness_policy: FreshnessPolicy | None = None,
) -> AssetsDefinition:
    """``dds_jobs`` over ``partitions_def`` (days, or days x ``targets``); shows late in the UI when not stored
    within ``freshness_policy``."""

    @asset(
        name="dds_jobs",
        pool=DDS_API_POOL,
        kinds={"sql"},
        freshness_policy=freshness_policy,
        partitions_def=partitions_def,
        # Any range of partitions as one run: one API window per target and run.
        backfill_policy=BackfillPolicy.single_run(),
        group_name="dds",
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
    ) -> MaterializeResult:
        with expected_errors_as_failures(context, warehouse):
            return _sync_targets(context, dds_api, warehouse, targets)

    return dds_jobs
