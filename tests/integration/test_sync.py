"""pipeline.sync on its own, without Dagster: the client against the simulator, into a real SQLite warehouse."""

from datetime import datetime, time, timedelta, timezone

from pipeline.api.auth import TokenAuth
from pipeline.api.client import DdsTaskCenterClient
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.sync import sync_days
from pipeline.warehouse.store import Warehouse

TOKEN = "sim-token-for-sync"


def test_a_day_whose_jobs_all_lack_a_text_field_is_stored(sqlite_url):
    # Found in a multi-project run: a day without any failure has no fail_reason at all, which once broke the
    # sharing of repeated text between rows.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    day = now.date() - timedelta(days=1)
    with DdsSimulator(SimulatorConfig(seed=1, jobs_per_day=0, token=TOKEN, now=now), port=0) as sim:
        sim.store.add_jobs(3, created_at=datetime.combine(day, time(9), tzinfo=timezone.utc))
        jobs = sim.store.visible_jobs(sim.project_id)
        assert len(jobs) == 3 and not any(job.get("fail_reason") for job in jobs)
        warehouse = Warehouse(sqlite_url)
        try:
            with DdsTaskCenterClient(sim.url, sim.project_id, TokenAuth(TOKEN)) as client:
                result = sync_days(client, warehouse, [day], now=now)
            stored = warehouse.query("SELECT id, fail_reason FROM dds_jobs")
        finally:
            warehouse.dispose()
    assert result.inserted == 3 and result.days[day].api_jobs == 3
    assert sorted(stored["id"]) == sorted(job["id"] for job in jobs)
    assert stored["fail_reason"].isna().all()
