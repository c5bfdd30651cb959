"""The assets: ``dds_jobs`` (warehouse table) and ``dds_jobs_parquet`` (Parquet snapshots), one partition per UTC day.

A run may cover many days (single-run backfill policy): the API is called once for the run's whole window,
in slices of at most 30 days, and every day gets its own materialization with its own figures.
"""

import time
import warnings

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    BetaWarning,
    asset,
)

from pipeline.api.client import FetchStats, Page
from pipeline.api.credentials import STATIC_TOKEN_WARNING
from pipeline.dds.partitions import day_key, days_of, dds_daily_partitions
from pipeline.dds.resources import DdsTaskCenterResource, ParquetSnapshotResource, WarehouseResource
from pipeline.sync import FULL, SyncResult, snapshot_days, sync_days

# Single-run backfills are the point of these assets (one API window per run); Dagster still labels the
# parameter beta, and repeating that on every load and run says nothing to our users.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)

# Steps that call the DDS API or write its Parquet snapshots share this Dagster pool; its limit (README) keeps
# backfills from throttling the account and serializes writers of the same Parquet day.
DDS_API_POOL = "dds_api"
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


def _count_check(result: SyncResult) -> AssetCheckResult:
    """Stored jobs of each fully retained day equal the distinct jobs the API returned for it.

    Days the API holds only in part, or no longer, cannot be compared: the store rightly holds more.
    """
    compared = {d: s for d, s in result.days.items() if s.coverage == FULL}
    mismatched = {day_key(d): f"{s.stored_jobs} stored, {s.api_jobs} from API" for d, s in compared.items()
                  if s.stored_jobs != s.api_jobs}
    return AssetCheckResult(
        check_name=STORED_MATCHES_API,
        passed=not mismatched,
        severity=AssetCheckSeverity.WARN,
        metadata={"days_compared": len(compared), "days_mismatched": len(mismatched),
                  "mismatches": MetadataValue.json(mismatched)},
    )


# Both assets: one partition per UTC day, and any range of days as one run (one API window per run).
_DAILY = {"partitions_def": dds_daily_partitions, "backfill_policy": BackfillPolicy.single_run(), "group_name": "dds"}


@asset(
    name="dds_jobs",
    pool=DDS_API_POOL,
    kinds={"sql"},
    **_DAILY,
    check_specs=[AssetCheckSpec(STORED_MATCHES_API, asset="dds_jobs",
                                description="Stored jobs per day equal the distinct jobs the API returned")],
    description="DDS task-center jobs, one row per (project_id, id) with its latest state, in the SQL warehouse. "
    "Partition = UTC day of created_at. Days older than the API's one-month retention are kept as stored.",
)
def dds_jobs(
    context: AssetExecutionContext, dds_api: DdsTaskCenterResource, warehouse: WarehouseResource
) -> MaterializeResult:
    days = days_of(context.partition_time_window)
    client, auth_method = dds_api.client()
    context.log.info(f"DDS API {client.endpoint}, project {client.project_id}, authentication: {auth_method}")
    if auth_method == "token":
        context.log.warning(STATIC_TOKEN_WARNING)
    with client:
        result = sync_days(client, warehouse.get(), days, region=dds_api.region or None,
                           on_page=_PageProgress(context))
    if result.gone_days:
        context.log.warning(
            f"{len(result.gone_days)} day(s) from {day_key(result.gone_days[0])} to {day_key(result.gone_days[-1])} "
            "are older than the DDS API's one-month retention: the source no longer holds them, nothing was "
            "fetched for them, and what is stored for them is left as it is"
        )
    for problem in result.problems:
        context.log.warning(f"DDS job records: {problem}")
    for day, day_sync in result.days.items():
        context.add_asset_metadata(day_sync.metadata(), partition_key=day_key(day))
    context.log.info(
        f"{sum(s.api_jobs for s in result.days.values()):,} jobs over {len(days)} day(s): "
        f"{result.inserted:,} new, {result.updated:,} updated, {result.rejected} rejected, {result.seconds:.1f}s"
    )
    return MaterializeResult(metadata=result.metadata(), check_results=[_count_check(result)])


@asset(
    name="dds_jobs_parquet",
    deps=[dds_jobs],
    # Object storage (DDS_PARQUET_ROOT=s3://...) has no locks: writers of the same day queue on the pool instead.
    pool=DDS_API_POOL,
    kinds={"parquet"},
    **_DAILY,
    description="Hive-partitioned Parquet snapshots of dds_jobs: {root}/dds_jobs/created_date=YYYY-MM-DD/, "
    "the latest state of each job, written from the warehouse.",
)
def dds_jobs_parquet(
    context: AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetSnapshotResource
) -> MaterializeResult:
    days = days_of(context.partition_time_window)
    store = parquet.get()
    written = snapshot_days(warehouse.get(), store, days)
    for day, rows in written.items():
        context.add_asset_metadata(
            {"rows": rows, "path": MetadataValue.path(str(store.day_path(day)))}, partition_key=day_key(day)
        )
    context.log.info(f"{sum(written.values()):,} rows over {len(days)} day(s) written under {store.root}")
    return MaterializeResult(metadata={"days": len(days), "root": MetadataValue.path(str(store.root))})
