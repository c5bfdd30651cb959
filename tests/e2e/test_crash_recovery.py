"""A sync process killed with SIGKILL at several points: what was stored stays consistent, no temporary file is
read as data, and the next run ends with exactly the API's jobs.

The killed run is ``tests/support/sync_child.py`` in a process of its own, against the simulator of this process.
The kill points: during the fetch (the simulator holds a request until the kill), inside the SQLite upsert and
before a Parquet rename (hooks of the child on sqlite3 and on the interpreter's audit events), and inside the
PostgreSQL upsert (this process holds a row lock the child's upsert waits on).
"""

import threading
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.support.dagster_helpers import last_day, late_on_last_day, pipeline_under_test
from tests.support.reliability_helpers import (
    SyncChild,
    assert_exact_data,
    hooked_jobs_route,
    leftover_files,
    lock_row,
    middle_job_id,
    snapshot_jobs,
    stored_jobs,
    wait_for,
    waiting_upserts,
)

def first_day() -> date:
    return last_day() - timedelta(days=2)


@contextmanager
def synced_once(tmp_path, monkeypatch, **sim_options):
    """A pipeline whose warehouse and snapshots hold a first sync of FIRST..LAST, while the API has moved on (its
    Running jobs have ended): the next run changes stored rows (their state, and last_seen_at of every one)."""
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=400, now=late_on_last_day(), **sim_options) as p:
        assert p.sync(first_day(), last_day()).success
        p.sim.store.complete_running()
        yield p


def run_killed_at(tmp_path: Path, stop_at: str) -> None:
    """Runs a sync child until it reports it reached ``stop_at``, then kills it."""
    marker = tmp_path / "reached"
    child = SyncChild(first_day(), last_day(), tmp_path / "child.log", stop_at=stop_at, marker=marker)
    try:
        wait_for(lambda: marker.exists() or child.process.poll() is not None, f"the child to reach {stop_at}")
        assert marker.exists(), f"the child ended before {stop_at}:\n{child.output()[-3000:]}"
        child.kill()
    finally:
        child.stop()


def test_killed_during_the_fetch_the_stored_data_is_untouched_and_the_next_run_exact(tmp_path, monkeypatch):
    armed, held, release = threading.Event(), threading.Event(), threading.Event()
    counted = threading.Lock()
    served: list[str] = []

    def hold_the_third_request(sim, request) -> None:
        if not armed.is_set():
            return
        with counted:
            served.append(request.query.get("offset", ""))
            third = len(served) == 3
        if third:
            held.set()
            release.wait(60)

    with synced_once(tmp_path, monkeypatch, extra_routes=[hooked_jobs_route(hold_the_third_request)]) as p:
        armed.set()
        rows, snapshot = stored_jobs(p.settings.warehouse_url), snapshot_jobs(p.settings.parquet_root)
        child = SyncChild(first_day(), last_day(), tmp_path / "child.log")
        try:
            wait_for(held.is_set, "the child's third request")
            child.kill()
        finally:
            release.set()
            child.stop()
        pd.testing.assert_frame_equal(stored_jobs(p.settings.warehouse_url), rows)
        pd.testing.assert_frame_equal(snapshot_jobs(p.settings.parquet_root), snapshot)
        assert p.sync(first_day(), last_day()).success
        assert_exact_data(p, first_day(), last_day())


def test_killed_inside_the_sqlite_upsert_the_transaction_leaves_no_trace(tmp_path, monkeypatch):
    with synced_once(tmp_path, monkeypatch) as p:
        rows = stored_jobs(p.settings.warehouse_url)
        run_killed_at(tmp_path, "sqlite-upsert:500")
        pd.testing.assert_frame_equal(stored_jobs(p.settings.warehouse_url), rows)
        assert p.sync(first_day(), last_day()).success
        assert_exact_data(p, first_day(), last_day())


@pytest.mark.parametrize("rename", [1, 2], ids=["before-first-day", "between-days"])
def test_killed_while_writing_parquet_readers_never_see_a_temporary_file(tmp_path, monkeypatch, rename):
    with synced_once(tmp_path, monkeypatch) as p:
        ids = set(snapshot_jobs(p.settings.parquet_root)["id"])
        run_killed_at(tmp_path, f"parquet-rename:{rename}")
        # The killed run's warehouse load was committed; each snapshot day is either the old or the new file. The
        # days' new files are all written before the first is renamed: what is left are hidden temporaries.
        leftovers = leftover_files(p.settings.parquet_root)
        assert len(leftovers) == (last_day() - first_day()).days + 1 - (rename - 1)
        assert all(Path(name).name.startswith(".part-0.") and name.endswith(".tmp") for name in leftovers)
        snapshot = snapshot_jobs(p.settings.parquet_root)
        assert snapshot["id"].is_unique and set(snapshot["id"]) == ids
        assert p.sync(first_day(), last_day()).success
        assert_exact_data(p, first_day(), last_day())


def server_process_alive(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as connection:
        return bool(connection.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                       {"pid": pid}).scalar())


@pytest.mark.postgres
def test_killed_inside_the_postgres_upsert_the_transaction_leaves_no_trace(tmp_path, monkeypatch, postgres_url):
    monkeypatch.setenv("DDS_WAREHOUSE_URL", postgres_url)
    engine = sa.create_engine(postgres_url)
    with synced_once(tmp_path, monkeypatch) as p:
        rows = stored_jobs(postgres_url)
        child = SyncChild(first_day(), last_day(), tmp_path / "child.log")
        try:
            with engine.connect() as holder, holder.begin():
                # The child's upsert stops at this row, with the rows before it already written in its transaction.
                lock_row(holder, middle_job_id(postgres_url))
                wait_for(lambda: waiting_upserts(engine) or child.process.poll() is not None, "the child's upsert")
                [server_pid] = waiting_upserts(engine)
                child.kill()
            # Released, the server process finds its client gone and rolls back.
            wait_for(lambda: not server_process_alive(engine, server_pid), "the killed run's server process")
        finally:
            child.stop()
        pd.testing.assert_frame_equal(stored_jobs(postgres_url), rows)
        assert p.sync(first_day(), last_day()).success
        assert_exact_data(p, first_day(), last_day())
    engine.dispose()
