"""The schedules: ``dds_jobs_daily`` (yesterday, completed, plus the earlier days that still hold Running jobs or
hold no complete sync, the catch-up) and ``dds_jobs_intraday`` (today so far, every DDS_INTRADAY_MINUTES).

A job Running at one sync usually ends within hours; re-syncing the days that still hold Running jobs (while the
API still answers for them) lands their final state within a day. A day whose sync never ran, failed, met a broken
answer or was interrupted holds no complete sync in the sync ledger (pipeline/history.py): every tick asks for it
again while the API still answers for it. The ledger is in the warehouse, written by the asset itself, so a
backfill from the UI or the CLI counts as a scheduled run does, and a lost Dagster instance loses nothing of it.
Contiguous days share one run, so the API is called once per run of days.

The report (dds_jobs_report) is rebuilt once per daily tick, in the run of yesterday, after its sync: with several
targets that run covers yesterday of every target (one run; inside it each target syncs, and fails, on its own), so
the report sees every target's completed day. The other runs of the tick (a target's catch-up or Running days) are
per target, without the report: one that fails delays no other, and what they bring is in the next day's report.
The intraday run never rebuilds it.
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone

from dagster import (
    AssetKey,
    DagsterRunStatus,
    FreshnessPolicy,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
    schedule,
)

from pipeline.api.windows import GONE, held_by_api, retained_since
from pipeline.history import contiguous_runs, day_ranges, unsynced_days
from pipeline.defs.partitions import (
    AS_OF_TAG,
    REGION_TAG,
    TARGET_TAG,
    day_key,
    day_of_every_target_tags,
    target_partition_key,
    target_range_tags,
)
from pipeline.defs.resources import WarehouseResource
from pipeline.defs.steps import ALERTS_ASSET, PARQUET_ASSET, REPORT_ASSET, SYNC_ASSET
from pipeline.targets import Target, keyed_by_target

SYNC_ASSETS = (SYNC_ASSET, PARQUET_ASSET)
# What every sync run of both schedules materializes after its sync: the one list to extend.
AFTER_SYNC_ASSETS: tuple[AssetKey, ...] = (ALERTS_ASSET,)
INTRADAY_ASSETS = (*SYNC_ASSETS, *AFTER_SYNC_ASSETS)
DAILY_ASSETS = (*SYNC_ASSETS, *AFTER_SYNC_ASSETS, REPORT_ASSET)
# Marks the intraday runs, so that a tick finds the previous one still going.
INTRADAY_TAG = "dds/intraday"
_GOING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
          DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def days_to_sync(
    now: datetime, running_days: Iterable[date], first_day: date, unsynced: Iterable[date] = ()
) -> list[tuple[date, date]]:
    """The runs of days the daily run asks for at ``now``: yesterday, and the days from ``first_day`` on that the API
    still answers for and that hold Running jobs or no complete sync (``unsynced``)."""
    yesterday = now.date() - timedelta(days=1)
    resync = resync_days(now, running_days, first_day, unsynced)
    return contiguous_runs([*resync, yesterday]) if yesterday >= first_day else contiguous_runs(resync)


def resync_days(now: datetime, running_days: Iterable[date], first_day: date, unsynced: Iterable[date]) -> list[date]:
    """The days before yesterday, from ``first_day`` on, that the API still answers for at ``now`` and that hold
    Running jobs or no complete sync (``unsynced``)."""
    yesterday = now.date() - timedelta(days=1)
    return [d for d in (*running_days, *unsynced) if first_day <= d < yesterday and held_by_api(d, now) != GONE]


def run_request(first: date, last: date, target: Target, tick: datetime | None = None,
                assets: Sequence[AssetKey] = INTRADAY_ASSETS) -> RunRequest:
    """One run over the days ``first``..``last`` (of ``target``): a single partition, or a partition range.

    Dagster launches a schedule's run key only once: the key names the ``tick`` too, so that days whose run failed
    are asked for again, under a new key, at the next tick."""
    run_key = f"{target_partition_key(first, target)}...{target_partition_key(last, target)}"
    if tick is not None:
        run_key = f"{tick_key(tick)}: {run_key}"
    tags = target_tags(target)
    if first == last:
        return RunRequest(run_key=run_key, partition_key=target_partition_key(first, target), tags=tags,
                          asset_selection=list(assets))
    return RunRequest(run_key=run_key, tags={**target_range_tags(first, last, target), **tags},
                      asset_selection=list(assets))


def target_tags(target: Target) -> dict[str, str]:
    """The run's target (and region, when known) as run tags: a target of DDS_TARGETS_FILE, or the one project
    (named by its project id)."""
    return {name: value for name, value in {TARGET_TAG: target.name, REGION_TAG: target.region}.items() if value}


def tick_key(tick: datetime) -> str:
    return f"tick {tick.astimezone(timezone.utc):%Y-%m-%dT%H:%M}Z"


def build_daily_schedule(
    daily: TimeWindowPartitionsDefinition,
    targets: Sequence[Target],
) -> ScheduleDefinition:
    """The ``dds_jobs_daily`` schedule over ``daily``'s days, for each of ``targets`` (the one project of
    DDS_PROJECT_ID, or those of DDS_TARGETS_FILE). A project id that is not set (definitions loaded without one):
    a day counts as synced when any project's sync completed it.

    The report is rebuilt once per tick, after yesterday's sync: the run of yesterday (with targets, one run of
    yesterday of every target) materializes it after dds_jobs; the tick's other runs (catch-up, Running days) do
    not, so that it is neither rebuilt per target nor before the day is complete."""

    @schedule(
        name="dds_jobs_daily",
        cron_schedule="15 0 * * *",
        execution_timezone="UTC",
        # The report (unpartitioned, downstream of dds_jobs) is rebuilt in the run of yesterday only, after its sync.
        target=list(DAILY_ASSETS),
        description="00:15 UTC: yesterday's jobs, a re-sync of the retained days that still hold Running jobs, and "
        "every retained day without a complete sync (catch-up)"
        + (f", for each of the {len(targets)} targets" if keyed_by_target(targets) else "")
        + "; the report is rebuilt once, in the run of yesterday.",
    )
    def dds_jobs_daily(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
        now = (context.scheduled_execution_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
        first_day = daily.start.date()
        since = max(first_day, retained_since(now).date())
        yesterday = now.date() - timedelta(days=1)
        store = warehouse.get()
        requests = []
        multi_target = keyed_by_target(targets)
        for target in targets:
            project = target.project_id or None
            running = store.days_with_status("Running", since=since, project_id=project)
            unsynced = unsynced_days(store, project, since, yesterday - timedelta(days=1))
            # With targets, yesterday is the one run of every target below.
            runs = (contiguous_runs(resync_days(now, running, first_day, unsynced)) if multi_target
                    else days_to_sync(now, running, first_day, unsynced))
            named = f"{target.name}: " if multi_target else ""
            catch_up = (f" (catch-up of {len(unsynced)} earlier day(s) without a complete sync: "
                        f"{', '.join(day_ranges(unsynced))})" if unsynced else "")
            context.log.info(f"daily run: {named}" + ", ".join(f"{day_key(a)}...{day_key(b)}" for a, b in runs)
                             + catch_up)
            requests.extend(run_request(a, b, target, tick=now, assets=DAILY_ASSETS if b == yesterday
                                        else INTRADAY_ASSETS) for a, b in runs)
        if multi_target and yesterday >= first_day:
            context.log.info(f"daily run: {day_key(yesterday)} of every target, then the report")
            requests.append(RunRequest(run_key=f"{tick_key(now)}: {day_key(yesterday)} of every target",
                                       tags=day_of_every_target_tags(yesterday, [t.name for t in targets]),
                                       asset_selection=list(DAILY_ASSETS)))
        return requests

    return dds_jobs_daily



def intraday_crons(minutes: int) -> str | list[str]:
    """Cron strings ticking every ``minutes`` from each UTC midnight on (a last shorter interval before midnight
    when ``minutes`` does not divide the day): one string when ``minutes`` divides an hour, else one per minute
    past the hour that some tick falls on, listing its hours."""
    if 60 % minutes == 0:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    hours_by_minute: dict[int, list[int]] = {}
    for moment in range(0, 24 * 60, minutes):
        hours_by_minute.setdefault(moment % 60, []).append(moment // 60)
    return [f"{minute} {'*' if len(hours) == 24 else ','.join(map(str, hours))} * * *"
            for minute, hours in sorted(hours_by_minute.items())]


def build_intraday_schedule(minutes: int, targets: Sequence[Target]) -> ScheduleDefinition | None:
    """``dds_jobs_intraday`` every ``minutes`` (DDS_INTRADAY_MINUTES; 0: no schedule): today so far, and the final
    state of the jobs of earlier days that were Running at their latest sync, for every target in one run.

    The run's requests end at the tick's time (run tag dds/as_of): a job created later, while the run pages, is
    the next tick's, which fetches today from midnight again; the upsert keeps one row per job. A tick that finds
    the previous intraday run still queued or going skips, saying so."""
    if minutes == 0:
        return None
    names = [target.name for target in targets]
    multi_target = keyed_by_target(targets)

    @schedule(
        name="dds_jobs_intraday",
        cron_schedule=intraday_crons(minutes),
        execution_timezone="UTC",
        target=list(INTRADAY_ASSETS),
        description=f"Every {minutes} min (DDS_INTRADAY_MINUTES): today's jobs so far and the final state of the jobs "
        "that were Running, " + (f"for the {len(targets)} targets in one run." if multi_target else "in one run."),
    )
    def dds_jobs_intraday(context: ScheduleEvaluationContext):
        tick = (context.scheduled_execution_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
        going = context.instance.get_run_records(RunsFilter(tags={INTRADAY_TAG: "true"}, statuses=_GOING), limit=1)
        if going:
            run = going[0].dagster_run
            return SkipReason(f"the previous intraday run {run.run_id} is still {run.status.value.lower()}: this tick "
                              "is skipped, the next one syncs today again")
        tags = {AS_OF_TAG: tick.isoformat(), INTRADAY_TAG: "true"}
        key = f"intraday {tick_key(tick)}"
        if multi_target:
            return RunRequest(run_key=key, tags={**day_of_every_target_tags(tick.date(), names), **tags},
                              asset_selection=list(INTRADAY_ASSETS))
        [target] = targets
        return RunRequest(run_key=key, partition_key=day_key(tick.date()),
                          tags={**tags, **target_tags(target)}, asset_selection=list(INTRADAY_ASSETS))

    return dds_jobs_intraday


def sync_freshness_policy(intraday_minutes: int) -> FreshnessPolicy:
    """dds_jobs is late when no run stored it for two intervals of its most frequent schedule: two intraday
    intervals, or two days when the intraday ticks are off."""
    interval = timedelta(minutes=intraday_minutes) if intraday_minutes else timedelta(days=1)
    return FreshnessPolicy.time_window(fail_window=2 * interval)
