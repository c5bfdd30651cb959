"""The jobs Running at an earlier sync, looked up again over HTTP against the simulator, on each warehouse database:
a few by id (a request each), many of one day by a window over them (its pages), and their final state stored."""

from datetime import timedelta

import pandas as pd

from pipeline.api import TimeWindow
from pipeline.api.client import DdsTaskCenterClient
from pipeline.records.normalize import normalize_jobs
from pipeline.running import plan_lookups, refresh_running
from pipeline.simulator import DdsSimulator
from tests.support.simulator_http import NOW, TOKEN, StaticToken, config

DAY = NOW.date() - timedelta(days=2)


def as_running(job: dict) -> dict:
    """The job as a sync saw it while it was Running."""
    return {**job, "status": "Running", "progress": "50%", "ended_at": "", "fail_reason": ""}


def load_day(sim: DdsSimulator, warehouse, running) -> list[dict]:
    """Store the day's jobs as the API shows them, the ``running`` ones (in order of creation) as seen while
    Running."""
    window = TimeWindow.for_days(DAY, DAY)
    jobs = [j for j in sim.store.visible_jobs(sim.project_id, window.start, window.end)
            if not j["created_at"].startswith((DAY + timedelta(days=1)).isoformat())]
    jobs.sort(key=lambda job: (job["created_at"], job["id"]))
    picked = running(jobs)
    records = [as_running(job) if job in picked else job for job in jobs]
    warehouse.upsert(normalize_jobs(records, sim.project_id, seen_at=NOW - timedelta(days=1)).frame)
    return picked


def stored_statuses(warehouse, ids) -> dict[str, str]:
    rows = warehouse.query("SELECT id, status FROM dds_jobs")
    return {job_id: status for job_id, status in zip(rows["id"], rows["status"]) if job_id in set(ids)}


def refresh(sim: DdsSimulator, warehouse):
    with DdsTaskCenterClient(sim.url, sim.project_id, StaticToken(TOKEN)) as client:
        return refresh_running(client, warehouse, NOW, [NOW.date()])


def test_a_few_running_jobs_are_looked_up_by_id_one_request_each(warehouse):
    with DdsSimulator(config(jobs_per_day=400), port=0) as sim:
        # The day's first and last job: a window between them would be the whole day, 4 pages.
        were_running = load_day(sim, warehouse, running=lambda jobs: [jobs[0], jobs[-1]])
        done = refresh(sim, warehouse)
        assert [r.query.get("id") for r in sim.requests] == [job["id"] for job in were_running]
        assert done.asked == 2 and done.ended == 2 and done.days == [DAY]
        assert stored_statuses(warehouse, [j["id"] for j in were_running]) == {
            job["id"]: job["status"] for job in were_running}


def test_many_running_jobs_of_a_day_are_read_as_one_window_over_them(warehouse):
    with DdsSimulator(config(jobs_per_day=150), port=0) as sim:
        were_running = load_day(sim, warehouse, running=lambda jobs: jobs[40:100])
        done = refresh(sim, warehouse)
        # A window from the first to the last of the 60 holds at most the day's 150 jobs: 2 pages, not 60 requests.
        assert len(sim.requests) <= 2 and all("id" not in r.query for r in sim.requests)
        assert done.ended == 60 and done.stats.requests == len(sim.requests)
        assert stored_statuses(warehouse, [j["id"] for j in were_running]) == {
            job["id"]: job["status"] for job in were_running}


def test_each_day_takes_the_cheaper_way():
    times = pd.to_datetime(["2026-11-18T10:00:00Z", "2026-11-18T11:00:00Z", "2026-11-19T09:00:00Z"], utc=True)
    running = pd.DataFrame({"id": ["a", "b", "c"], "created_at": times, "created_date": times.date})
    # Two Running jobs with 1,000 jobs between them: 2 requests by id beat 10 pages; one in a quiet day: 1 by id.
    lookups = plan_lookups(running, lambda start, end: 1000 if start.day == 18 else 1, page_size=100)
    assert [(lookup.job_ids, lookup.requests) for lookup in lookups] == [(("a",), 1), (("b",), 1), (("c",), 1)]
    # Two Running jobs with 50 between them: one page of a window beats 2 requests.
    [window] = plan_lookups(running[:2], lambda start, end: 50, page_size=100)
    assert (window.job_ids, window.requests, window.window.end - window.window.start) == (
        (), 1, timedelta(hours=1, seconds=1))
