"""The sensor ``dds_jobs_parquet_after_partial_failure`` and its job ``dds_jobs_parquet_job``: the Parquet snapshots
of the targets a failed run did store.

A run over several targets stores each target in a transaction of its own, so when one target fails the others'
days are in the warehouse (and recorded as materializations of ``dds_jobs``), and the run then fails. Dagster skips a
step whose upstream step failed, so that run's ``dds_jobs_parquet`` step never runs. This sensor runs it afterwards,
once per stored target, over that target's days of the failed run: each asset records its own materializations. The
new run is tagged with the failed run (``SNAPSHOTS_OF_RUN_TAG``), whose sync recorded the days it changed outside
its partitions, so those days are rewritten too. Until the snapshots are written, the sync ledger holds the days as
due (their ``snapshot_error`` says why), so a deployment without the daemon catches them up on its next sync.
"""

from collections.abc import Sequence

from dagster import (
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    PartitionKeyRange,
    PartitionsDefinition,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    SkipReason,
    define_asset_job,
    run_failure_sensor,
)

from pipeline.defs.partitions import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    REGION_TAG,
    TARGET_TAG,
    days_by_target,
    target_range_tags,
)
from pipeline.defs.steps import (
    PARQUET_AFTER_FAILURE_SENSOR,
    PARQUET_ASSET,
    SNAPSHOTS_OF_RUN_TAG,
    SYNC_ASSET,
    synced_dds_jobs,
)
from pipeline.targets import Target

PARQUET_JOB = "dds_jobs_parquet_job"


def stored_targets(instance: DagsterInstance, run_id: str) -> list[str]:
    """The targets whose days the run stored: its sync step records a run summary (an observation of dds_jobs
    naming the target) for each target it stored, and for no other."""
    names = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_OBSERVATION):
        observation = record.asset_observation
        target = observation.metadata.get("target") if observation and observation.asset_key == SYNC_ASSET else None
        if target is not None and target.value not in names:
            names.append(target.value)
    return names


def sync_step_failed(instance: DagsterInstance, run_id: str) -> bool:
    """Whether the run's sync step itself failed (a later step failing leaves no target unsnapshotted by it)."""
    return any(record.step_key == SYNC_ASSET.path[-1]
               for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE))


def _run_keys(partitions_def: PartitionsDefinition, tags: dict[str, str]) -> list[str]:
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return list(partitions_def.get_partition_keys_in_range(
            PartitionKeyRange(tags[RANGE_START_TAG], tags[RANGE_END_TAG])))
    return [tags[PARTITION_TAG]] if PARTITION_TAG in tags else []


def snapshot_requests(
    instance: DagsterInstance, run_id: str, tags: dict[str, str], partitions_def: PartitionsDefinition,
    targets: Sequence[Target],
) -> list[RunRequest]:
    """One run of ``dds_jobs_parquet`` per target the failed run ``run_id`` (of partition ``tags``) stored, over
    that target's days of the run."""
    plan = days_by_target(partitions_def, _run_keys(partitions_def, tags))
    by_name = {target.name: target for target in targets}
    return [
        RunRequest(run_key=f"snapshots of failed run {run_id}, target {name}",
                   tags={**target_range_tags(plan[name][0], plan[name][-1], by_name[name]),
                         SNAPSHOTS_OF_RUN_TAG: run_id, TARGET_TAG: name, REGION_TAG: by_name[name].region})
        for name in stored_targets(instance, run_id) if name in plan and name in by_name
    ]


def build_parquet_after_partial_failure(
    partitions_def: PartitionsDefinition, targets: Sequence[Target]
) -> tuple[object, SensorDefinition]:
    """The job and the sensor (module doc); on by default, needs the daemon, as the schedules do."""
    # Its partitions are the asset's (Dagster infers them from the selection).
    job = define_asset_job(PARQUET_JOB, selection=AssetSelection.assets(PARQUET_ASSET),
                           description="dds_jobs_parquet alone: the snapshots of the targets a failed run stored.")

    @run_failure_sensor(name=PARQUET_AFTER_FAILURE_SENSOR, request_job=job, default_status=DefaultSensorStatus.RUNNING,
                        description="After a run over several targets stored some and failed on others, writes the "
                        "stored targets' Parquet snapshots: the run's own dds_jobs_parquet step was skipped.")
    def dds_jobs_parquet_after_partial_failure(context: RunFailureSensorContext):
        run = context.dagster_run
        if not synced_dds_jobs(run, PARQUET_JOB):
            return SkipReason(f"run {run.run_id} did not sync dds_jobs")
        if not sync_step_failed(context.instance, run.run_id):
            return SkipReason(f"run {run.run_id} failed after its sync step, whose targets were all snapshotted")
        requests = snapshot_requests(context.instance, run.run_id, dict(run.tags), partitions_def, targets)
        return requests or SkipReason(f"run {run.run_id} stored no target")

    return job, dds_jobs_parquet_after_partial_failure
