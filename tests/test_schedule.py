"""The daily schedule, evaluated against a real warehouse: which days it asks for."""

from datetime import datetime, time, timedelta, timezone

from dagster import DagsterInstance, build_schedule_context

from pipeline.dds.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.dds.resources import WarehouseResource
from pipeline.dds.schedules import dds_jobs_daily
from pipeline.storage.normalize import normalize_jobs
from pipeline.storage.warehouse import Warehouse



def _job(job_id: str, created: datetime, status: str) -> dict:
    return {"id": job_id, "name": "RestartInstance", "instance_id": "i1", "instance_name": "dds-1",
            "status": status, "progress": "40%" if status == "Running" else "",
            "fail_reason": "", "created_at": created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "ended_at": "" if status == "Running" else created.strftime("%Y-%m-%dT%H:%M:%S+0000")}


def test_the_daily_run_asks_for_yesterday_and_retained_days_still_running(sqlite_url):
    tick = datetime.combine(datetime.now(timezone.utc).date(), time(0, 15), tzinfo=timezone.utc)
    yesterday = tick.date() - timedelta(days=1)

    def at(days_back: int) -> datetime:
        return datetime.combine(yesterday - timedelta(days=days_back), time(12), tzinfo=timezone.utc)

    records = [_job("run-1", at(1), "Running"), _job("run-5", at(5), "Running"),
               _job("done-3", at(3), "Completed"), _job("run-40", at(40), "Running")]
    warehouse = Warehouse(sqlite_url)
    warehouse.ensure_schema()
    warehouse.upsert(normalize_jobs(records, "p1", seen_at=tick).frame)
    warehouse.dispose()

    with DagsterInstance.ephemeral() as instance:
        with build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                    resources={"warehouse": WarehouseResource(url=sqlite_url)}) as context:
            requests = list(dds_jobs_daily(context))

    asked = sorted(
        (r.tags.get(RANGE_START_TAG) or r.partition_key, r.tags.get(RANGE_END_TAG) or r.partition_key) for r in requests
    )
    day = lambda n: (yesterday - timedelta(days=n)).isoformat()  # noqa: E731
    # Day -40 is beyond the API's retention; day -3 holds no Running job; -1 and yesterday share a run.
    assert asked == [(day(5), day(5)), (day(1), day(0))]
    assert len({r.run_key for r in requests}) == len(requests)


def test_a_quiet_warehouse_gives_just_yesterday(sqlite_url):
    tick = datetime.combine(datetime.now(timezone.utc).date(), time(0, 15), tzinfo=timezone.utc)
    with DagsterInstance.ephemeral() as instance:
        with build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                    resources={"warehouse": WarehouseResource(url=sqlite_url)}) as context:
            requests = list(dds_jobs_daily(context))
    assert [r.partition_key for r in requests] == [(tick.date() - timedelta(days=1)).isoformat()]
