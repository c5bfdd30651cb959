"""The daily schedule, evaluated against a real warehouse and its sync ledger: which days it asks for."""

from datetime import date, datetime, time, timedelta, timezone

from dagster import DagsterInstance, build_schedule_context

from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TARGET_TAG, daily_partitions
from pipeline.defs.resources import WarehouseResource
from pipeline.defs.sync.schedules import build_daily_schedule
from pipeline.targets import project_target
from pipeline.records.normalize import normalize_jobs
from pipeline.config import DEFAULT_START_DATE
from pipeline.api.windows import retained_since
from pipeline.warehouse.ledger import Attempt, record_failure, record_sync
from pipeline.warehouse.store import Warehouse

TICK = datetime.combine(datetime.now(timezone.utc).date(), time(0, 15), tzinfo=timezone.utc)
YESTERDAY = TICK.date() - timedelta(days=1)


def day(days_back: int) -> date:
    return YESTERDAY - timedelta(days=days_back)


def _job(job_id: str, created: datetime, status: str) -> dict:
    return {"id": job_id, "name": "RestartInstance", "instance_id": "i1", "instance_name": "dds-1",
            "status": status, "progress": "40%" if status == "Running" else "",
            "fail_reason": "", "created_at": created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "ended_at": "" if status == "Running" else created.strftime("%Y-%m-%dT%H:%M:%S+0000")}


def asked(schedule, url: str, tick: datetime = TICK) -> list:
    with DagsterInstance.ephemeral() as instance:
        with build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                    resources={"warehouse": WarehouseResource(url=url)}) as context:
            return list(schedule(context))


def ranges(requests) -> list[tuple[str, str]]:
    return sorted((r.tags.get(RANGE_START_TAG) or r.partition_key, r.tags.get(RANGE_END_TAG) or r.partition_key)
                  for r in requests)


def test_the_daily_run_asks_for_yesterday_running_days_and_every_day_without_a_complete_sync(sqlite_url):
    start = day(33)
    warehouse = Warehouse(sqlite_url)
    noon = lambda n: datetime.combine(day(n), time(12), tzinfo=timezone.utc)  # noqa: E731
    records = [_job("run-5", noon(5), "Running"), _job("done-3", noon(3), "Completed"),
               _job("run-40", noon(40), "Running")]
    warehouse.upsert(normalize_jobs(records, "p1", seen_at=TICK).frame)
    with warehouse.transaction() as connection:
        # Synced: every day since the start but those below. Day 12 never ran; day 13 was attempted without being
        # fetched whole; day 8 failed; day 32, gone from the API, was never synced.
        unsynced = {8, 12, 13, 32}
        record_sync(connection, Attempt("p1", TICK), {day(n): 7 for n in range(1, 34) if n not in unsynced})
        record_sync(connection, Attempt("p1", TICK), {day(13): None})
        record_failure(connection, Attempt("p1", TICK), [day(8)], RuntimeError("HTTP 500"))
        # Another project's days say nothing of p1's.
        record_sync(connection, Attempt("p2", TICK), {day(8): 3, day(12): 3})
    warehouse.dispose()

    schedule = build_daily_schedule(daily_partitions(start), [project_target("p1")])
    requests = asked(schedule, sqlite_url)

    # Day 5 holds a Running job; day 40 too, but it is before the start and the API's month; day 3's job is done.
    iso = lambda n: day(n).isoformat()  # noqa: E731
    assert ranges(requests) == [(iso(13), iso(12)), (iso(8), iso(8)), (iso(5), iso(5)), (iso(0), iso(0))]
    # The run key names the tick: a run that fails is asked for again, under a new key, at the next tick.
    assert len({r.run_key for r in requests}) == len(requests)
    assert all(r.run_key.startswith(f"tick {TICK:%Y-%m-%dT%H:%M}Z: ") for r in requests)
    # A single-project deployment's runs carry its project as their target, as a targets file's runs do.
    assert {r.tags.get(TARGET_TAG) for r in requests} == {"p1"}
    assert {r.run_key for r in asked(schedule, sqlite_url, TICK + timedelta(days=1))}.isdisjoint(
        {r.run_key for r in requests})


def test_a_new_deployment_asks_for_every_day_since_its_start_date_the_api_still_holds(sqlite_url):
    # From DDS_START_DATE when the API still holds it...
    recent = build_daily_schedule(daily_partitions(day(3)), [project_target("p1")])
    assert ranges(asked(recent, sqlite_url)) == [(day(3).isoformat(), YESTERDAY.isoformat())]
    # ...else from the oldest day it answers for (in part), as one run.
    oldest = retained_since(TICK).date()
    since_long_ago = build_daily_schedule(daily_partitions(DEFAULT_START_DATE), [project_target(None)])
    assert ranges(asked(since_long_ago, sqlite_url)) == [(oldest.isoformat(), YESTERDAY.isoformat())]


def test_a_synced_history_gives_just_yesterday(sqlite_url):
    warehouse = Warehouse(sqlite_url)
    with warehouse.transaction() as connection:
        record_sync(connection, Attempt("p1", TICK), {day(n): 1 for n in range(1, 10)})
    warehouse.dispose()
    schedule = build_daily_schedule(daily_partitions(day(9)), [project_target("p1")])
    assert [r.partition_key for r in asked(schedule, sqlite_url)] == [YESTERDAY.isoformat()]
