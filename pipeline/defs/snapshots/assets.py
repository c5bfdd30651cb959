"""The asset ``dds_jobs_parquet``: the hive-partitioned Parquet snapshots of ``dds_jobs``, written from the warehouse.

Its step writes and records its own days: the run's partitions, and the days outside them whose stored jobs the
run's sync changed (Running jobs of earlier days looked up again, jobs whose created_at moved to another day). It
finds those in the run's event log: the sync step records them (per target) in its run summary, an observation of
``dds_jobs`` (field ``days_changed_outside_the_run``). The event log is Dagster's own record of the run, written
before this step starts (it waits for the sync), kept when a step fails, and shared with the runs that re-execute
this one (from failure, or this step alone: the parent runs' observations are read too); the warehouse has no
record of the days a sync moved jobs out of, and a later sync would not find those moves again.
"""

from collections.abc import Iterable, Sequence
from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    BackfillPolicy,
    DagsterEventType,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from pipeline.defs.partitions import day_key, target_partition_key
from pipeline.defs.resources import ParquetSnapshotResource, WarehouseResource
from pipeline.defs.steps import (
    CHANGED_DAYS,
    DDS_API_POOL,
    PARQUET_ASSET,
    SNAPSHOTS_OF_RUN_TAG,
    SYNC_ASSET,
    as_metadata,
    expected_errors_as_failures,
    record_run_summary,
    run_plan,
)
from pipeline.targets import Target



def changed_days(context: AssetExecutionContext) -> dict[str, dict[str, list[date]]]:
    """Per target name, the days the sync of this run (or of the runs it re-executes) changed
    outside the run's partitions, as the sync step recorded them."""
    changed: dict[str, dict[str, list[date]]] = {}
    for run_id in _run_and_parents(context):
        for record in context.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_OBSERVATION):
            observation = record.asset_observation
            if observation is None or observation.asset_key != SYNC_ASSET:
                continue
            entry, target = observation.metadata.get(CHANGED_DAYS), observation.metadata.get("target")
            if entry is None or target is None:
                continue
            days = changed.setdefault(target.value, {"refreshed": [], "moved_out_of": []})
            for kind, listed in entry.value.items():
                days[kind] = sorted({*days[kind], *map(date.fromisoformat, listed)})
    return changed


def _run_and_parents(context: AssetExecutionContext) -> Iterable[str]:
    """The run, the runs it re-executes, and the failed run whose stored targets it snapshots (after_failure.py)."""
    run = context.run
    if SNAPSHOTS_OF_RUN_TAG in run.tags:
        yield run.tags[SNAPSHOTS_OF_RUN_TAG]
    while run is not None:
        yield run.run_id
        run = context.instance.get_run_by_id(run.parent_run_id) if run.parent_run_id else None


def _snapshot(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    parquet: ParquetSnapshotResource,
    targets: Sequence[Target],
) -> MaterializeResult:
    """Write the Parquet snapshots of the run's days and of the days the sync changed outside them.

    A day's snapshot holds the day's jobs of every project, so each target's partition of the day points at it. A
    day whose files had gone wrong is healed from the warehouse: a warning names it, its files and the reason.
    """
    from pipeline.sync import snapshot_days

    store = parquet.get()
    plan = run_plan(context, targets)
    changed = changed_days(context)
    run_days = set().union(*plan.values())
    by_name = {target.name: target for target in targets}
    # Only the run's own targets: a target the deployment no longer lists (a re-execution after the targets file
    # changed) has no partition here, and a run snapshotting one target of a failed run leaves the others to theirs.
    changed = {name: days for name, days in changed.items() if by_name.get(name) in plan}
    refreshed = {by_name[name]: [d for d in days["refreshed"] if d not in run_days] for name, days in changed.items()}
    moved = sorted({d for days in changed.values() for d in days["moved_out_of"]})
    written = snapshot_days(warehouse.get(), store, sorted(run_days.union(*refreshed.values())), moved)
    for day, done in written.items():
        _warn_of(context, day, done)
    def metadata(day: date) -> dict[str, object]:
        return {**as_metadata(written[day].metadata()), "path": MetadataValue.path(str(store.day_path(day)))}

    for target, days in plan.items():
        for day in days:
            context.add_asset_metadata(metadata(day), partition_key=target_partition_key(day, target))
    # Days outside the run's partitions: recorded here as materializations of their own partitions.
    for target, days in refreshed.items():
        for day in days:
            context.log_event(AssetMaterialization(asset_key=PARQUET_ASSET, partition=target_partition_key(day, target),
                                                   metadata=metadata(day)))
    for day in moved:
        context.log.info(f"Parquet day {day_key(day)} refreshed: jobs stored on it now have another created_at day "
                         f"({written[day].rows:,} rows left)")
    rows = sum(done.rows for done in written.values())
    context.log.info(f"run summary: {rows:,} rows over {len(written)} day(s) written under {store.root}")
    record_run_summary(context, PARQUET_ASSET, {"days": len(written), "rows": rows,
                                                "root": MetadataValue.path(str(store.root))})
    return MaterializeResult()


def _warn_of(context: AssetExecutionContext, day: date, done) -> None:
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


def build_snapshot_assets(partitions_def: PartitionsDefinition, targets: Sequence[Target]) -> AssetsDefinition:
    """``dds_jobs_parquet`` over ``partitions_def`` (days, or days x ``targets``), downstream of ``dds_jobs``."""

    @asset(
        name=PARQUET_ASSET.path[-1],
        deps=[SYNC_ASSET],
        # Object storage (DDS_PARQUET_ROOT=s3://...) has no locks: writers of the same day queue on the pool instead.
        pool=DDS_API_POOL,
        kinds={"parquet"},
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="dds",
        description="Hive-partitioned Parquet snapshots of dds_jobs: {root}/dds_jobs/created_date=YYYY-MM-DD/, "
        "the latest state of each job, written from the warehouse.",
    )
    def dds_jobs_parquet(
        context: AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource
    ) -> MaterializeResult:
        with expected_errors_as_failures(context, warehouse):
            return _snapshot(context, warehouse, parquet, targets)

    return dds_jobs_parquet
