"""Dagster's floor for a sync run: the shape of ``pipeline.definitions`` with assets and checks that do no work.

The same asset names, daily partitions, single-run backfill policy, pool, checks and in-process executor as the
real definitions, so that ``dagster asset materialize -m bench.noop_definitions --select dds_jobs,dds_jobs_parquet
--partition-range A...B`` pays what Dagster itself costs for that run (process start, code loading, one
materialization event per partition and asset, one evaluation per check) and nothing else: every body returns at
once. bench/bench_sync.py subtracts this run's wall time from the real one's to tell what our code costs.
"""

import warnings

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    Definitions,
    MaterializeResult,
    asset,
    asset_check,
    in_process_executor,
)

from pipeline.defs.partitions import daily_partitions
from pipeline.config import Deployment

# As in pipeline.defs.sync.assets: the beta label of backfill_policy is noise on every load.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)
# Spelled out rather than imported from pipeline.defs.sync.assets: that import loads pandas, pyarrow and the API client,
# which is our code's start-up cost, not Dagster's.
DDS_API_POOL = "dds_api"
STORED_MATCHES_API = "stored_count_matches_api"
_DAILY = {"partitions_def": daily_partitions(Deployment.from_env().start_date), "backfill_policy": BackfillPolicy.single_run(), "pool": DDS_API_POOL}


@asset(name="dds_jobs", check_specs=[AssetCheckSpec(STORED_MATCHES_API, asset="dds_jobs")], **_DAILY)
def dds_jobs(context: AssetExecutionContext) -> MaterializeResult:
    return MaterializeResult(check_results=[AssetCheckResult(check_name=STORED_MATCHES_API, passed=True)])


@asset(name="dds_jobs_parquet", deps=[dds_jobs], **_DAILY)
def dds_jobs_parquet(context: AssetExecutionContext) -> MaterializeResult:
    return MaterializeResult()


def passing_check(name: str, asset_def: AssetsDefinition) -> AssetChecksDefinition:
    """A check of ``asset_def`` named as one of the real checks, that passes at once."""

    @asset_check(asset=asset_def, name=name)
    def check() -> AssetCheckResult:
        return AssetCheckResult(passed=True)

    return check


defs = Definitions(
    assets=[dds_jobs, dds_jobs_parquet],
    asset_checks=[
        passing_check("no_duplicate_keys", dds_jobs),
        passing_check("no_days_at_risk", dds_jobs),
        passing_check("ended_not_before_created", dds_jobs),
        passing_check("parquet_matches_warehouse", dds_jobs_parquet),
    ],
    executor=in_process_executor,
)
