"""The Parquet snapshots verified against the warehouse from the UI, over the whole history: job ``dds_parquet_verify``.

It runs pipeline/snapshots/verify.py: every day the warehouse or the snapshots hold must read and equal the
warehouse's rows of that day. Launched with ``repair: true`` it repairs what it finds (bad days rewritten from the
warehouse, what is taken out kept in ``{root}/_quarantine``). The report (the days that were not ok, as a Markdown
table) is recorded as an observation of ``dds_jobs_parquet`` (the asset's page, *Events*) and as the step's output;
the run fails when problems remain.

A job rather than an asset check on ``dds_jobs_parquet``: a check of the asset runs in every run that materializes it
(the schedule's, a backfill's), and a whole-history verification is meant to run on demand.
"""

from typing import TYPE_CHECKING

from dagster import (
    AssetObservation,
    Config,
    ConfigMapping,
    Failure,
    Field,
    MetadataValue,
    OpExecutionContext,
    Output,
    job,
    op,
)
from pydantic import Field as ConfigField

from pipeline.defs.steps import DDS_API_POOL, PARQUET_ASSET
from pipeline.defs.resources import ParquetSnapshotResource, WarehouseResource

if TYPE_CHECKING:
    from pipeline.snapshots.verify import VerifyReport

VERIFY_JOB = "dds_parquet_verify"
_VERIFY_OP = "verify_parquet_snapshots"
# Quarantined copies listed in the metadata; the report names their folder.
_MOVED_SHOWN = 100


class ParquetVerifyConfig(Config):
    repair: bool = ConfigField(
        default=False, description="Rewrite each bad day from the warehouse; what is taken out is kept in the "
        "quarantine folder {root}/_quarantine, never deleted.")


@op(
    name=_VERIFY_OP,
    # A repair writes Parquet days: it queues with the runs that write them (object storage has no locks).
    pool=DDS_API_POOL,
    description="Verify every day of the Parquet snapshots against the warehouse; with repair, rewrite the bad ones.",
)
def verify_parquet_snapshots(
    context: OpExecutionContext,
    config: ParquetVerifyConfig,
    warehouse: WarehouseResource,
    parquet: ParquetSnapshotResource,
) -> Output[None]:
    # Imported by the run: the verification loads Arrow, which loading the definitions need not.
    from pipeline.snapshots.verify import OK, verify_parquet

    report = verify_parquet(warehouse.get(), parquet.get(), repair=config.repair)
    for verdict in report.days:
        if verdict.status != OK:
            done = f"; repair: {verdict.repair}, now {verdict.after}" if verdict.repair else ""
            context.log.warning(f"Parquet day {verdict.day.isoformat()} ({verdict.status}): {verdict.problems()}{done}")
    for path in report.strays:
        context.log.warning(f"Parquet dataset: stray file {path} outside the day folders")
    context.log.info(report.summary())
    metadata = _metadata(report, config.repair)
    context.log_event(AssetObservation(asset_key=PARQUET_ASSET, metadata=metadata))
    if report.problems_remain:
        hint = "" if config.repair else " (launch dds_parquet_verify with repair: true to repair them)"
        raise Failure(description=report.summary() + hint, metadata=metadata)
    return Output(None, metadata=metadata)


def _metadata(report: "VerifyReport", repair: bool) -> dict[str, object]:
    return {
        "verified": MetadataValue.md(report.markdown()),
        **report.counts(),
        "repair": repair,
        "quarantine": MetadataValue.path(report.quarantine),
        "moved_aside": MetadataValue.json(report.moved_aside[:_MOVED_SHOWN]),
    }


@job(
    name=VERIFY_JOB,
    description="Verify every day of the Parquet snapshots against the warehouse; with repair: true, rewrite the "
    "bad days from the warehouse (what is taken out is kept in {root}/_quarantine).",
    # The Launchpad then shows one field, `repair`, rather than the op's configuration.
    config=ConfigMapping(
        config_schema={"repair": Field(bool, default_value=False,
                                       description="rewrite the bad days from the warehouse")},
        config_fn=lambda run: {"ops": {_VERIFY_OP: {"config": {"repair": run["repair"]}}}},
    ),
)
def dds_parquet_verify() -> None:
    verify_parquet_snapshots()
