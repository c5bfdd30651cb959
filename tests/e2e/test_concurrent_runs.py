"""Two runs of the same days at the same time, each in a process of its own: both succeed and the warehouse
and the snapshots end exact.

The runs are made to overlap, and to hold the same jobs in opposite orders: each reads its own simulator (the
same jobs, one newest first, the other oldest first), and each simulator holds the run's first request until
the other run's has arrived. On PostgreSQL a row lock held here also stops both upserts until both wait on it.
"""

import dataclasses
import threading
from datetime import date, timedelta

import sqlalchemy as sa

from pipeline.simulator import DdsSimulator
from tests.support.dagster_helpers import TOKEN, last_day, pipeline_under_test
from tests.support.reliability_helpers import (
    SyncChild,
    assert_exact_data,
    hooked_jobs_route,
    lock_row,
    middle_job_id,
    wait_for,
    waiting_upserts,
)

def first_day() -> date:
    return last_day() - timedelta(days=2)
RUNS = 2


class FetchesStartTogether:
    """A jobs-route hook that, once armed, holds each run's first request (offset 0) until every run sent one."""

    def __init__(self, runs: int) -> None:
        self._runs, self._arrived = runs, 0
        self._lock, self.armed, self._everyone = threading.Lock(), threading.Event(), threading.Event()

    def __call__(self, sim, request) -> None:
        if not self.armed.is_set() or request.query.get("offset") != "0" or self._everyone.is_set():
            return
        with self._lock:
            self._arrived += 1
            if self._arrived == self._runs:
                self._everyone.set()
        assert self._everyone.wait(60), "the other run never started its fetch"


def test_two_runs_of_the_same_days_at_once_end_with_exact_data(tmp_path, monkeypatch, warehouse_url):
    monkeypatch.setenv("DDS_WAREHOUSE_URL", warehouse_url)
    together = FetchesStartTogether(RUNS)
    routes = [hooked_jobs_route(together)]
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=400, extra_routes=routes) as p:
        # A first sync creates the table, so that the PostgreSQL runs have a row to queue on.
        assert p.sync(first_day(), last_day()).success
        together.armed.set()
        reversed_config = dataclasses.replace(p.sim.config, order="oldest_first")
        with DdsSimulator(reversed_config, port=0) as reversed_sim:
            children = [
                SyncChild(first_day(), last_day(), tmp_path / "child-0.log"),
                SyncChild(first_day(), last_day(), tmp_path / "child-1.log", env={"DDS_ENDPOINT": reversed_sim.url}),
            ]
            try:
                if warehouse_url.startswith("postgresql"):
                    engine = sa.create_engine(warehouse_url)
                    with engine.connect() as holder, holder.begin():
                        lock_row(holder, middle_job_id(warehouse_url))
                        wait_for(lambda: len(waiting_upserts(engine)) == RUNS, "both upserts to wait for a lock")
                    engine.dispose()
                for child in children:
                    child.finish()
                    assert TOKEN not in child.output()
            finally:
                for child in children:
                    child.stop()
            assert len(reversed_sim.requests) > 1
        assert_exact_data(p, first_day(), last_day())
