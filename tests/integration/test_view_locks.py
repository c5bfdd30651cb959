"""A reader's transaction held open on an analyst view, across real syncs against the simulator, on PostgreSQL and
MariaDB (the databases whose views take locks): the sync finishes, another reader is not blocked, and a changed
view is applied by the first run that finds the view free."""

import logging
import shutil
import time as clock
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from pipeline.simulator import DdsSimulator
from tests.support.paths import SQL_DIR
from tests.support.simulator_http import NOW, config
from tests.support.sync_helpers import run_sync

DAYS = [NOW.date() - timedelta(days=n) for n in (3, 2, 1)]
VIEW = "dds_jobs_daily_status"
# Long enough for a view's bounded wait (views.VIEW_LOCK_TIMEOUT_SECONDS) and a busy CI machine; a reader blocked
# behind a sync that waits for ever is stopped by it instead of hanging.
READER_TIMEOUT_SECONDS = 20
# A lock wait, as each server shows its sessions.
LOCK_WAITS = {
    "postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                  "AND datname = current_database()",
    "mysql": "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
             "AND STATE LIKE 'Waiting for%%lock%%'",
}


@pytest.fixture
def url(server_warehouse_url):
    return server_warehouse_url


@pytest.fixture
def simulator():
    with DdsSimulator(config(seed=21, jobs_per_day=40), port=0) as sim:
        yield sim


@pytest.fixture
def views_dir(tmp_path, monkeypatch):
    """A copy of sql/views/ that the runs of the test read their views from, to be edited."""
    copy = tmp_path / "views"
    shutil.copytree(SQL_DIR / "views", copy)
    monkeypatch.setattr("pipeline.warehouse.views.sql_folder", lambda folder: copy)
    return copy


def synced(url: str, simulator: DdsSimulator) -> int:
    """One run syncing DAYS; the jobs it inserted."""
    return run_sync(url, simulator, DAYS, NOW)


@contextmanager
def reader_in_transaction(url: str) -> Iterator[sa.Connection]:
    """A reader (a BI tool, a notebook) that selected from the view in a transaction it leaves open."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as reader:
            reader.execute(sa.text(f"SELECT COUNT(*) FROM {VIEW}")).scalar_one()
            assert reader.in_transaction()
            yield reader
            reader.rollback()
    finally:
        engine.dispose()


def second_reader_sees(url: str, columns: str = "day, status, jobs") -> int:
    """A new reader's rows of the view, read under a statement timeout: a blocked SELECT fails instead of waiting."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as reader:
            if engine.dialect.name == "postgresql":
                reader.exec_driver_sql(f"SET statement_timeout = '{READER_TIMEOUT_SECONDS}s'")
            else:  # a view's metadata lock is waited for under lock_wait_timeout, not max_statement_time
                reader.exec_driver_sql(f"SET SESSION max_statement_time = {READER_TIMEOUT_SECONDS}, "
                                       f"lock_wait_timeout = {READER_TIMEOUT_SECONDS}")
            return len(reader.execute(sa.text(f"SELECT {columns} FROM {VIEW}")).all())
    finally:
        engine.dispose()


def when_sync_waits_or_ends(url: str, running: Future) -> None:
    """Return once the running sync has ended or waits for a lock (a condition polled, never a fixed delay)."""
    engine = sa.create_engine(url)
    waits = LOCK_WAITS["postgresql" if engine.dialect.name == "postgresql" else "mysql"]
    try:
        with engine.connect() as watcher:
            while not running.done() and not watcher.exec_driver_sql(waits).scalar_one():
                watcher.rollback()
                clock.sleep(0.02)
    finally:
        engine.dispose()


def view_columns(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return [column["name"] for column in sa.inspect(engine).get_columns(VIEW)]
    finally:
        engine.dispose()


@pytest.mark.timeout(120)
def test_a_reader_transaction_left_open_neither_stalls_the_sync_nor_blocks_another_reader(url, simulator):
    assert synced(url, simulator) > 0  # the first run creates the views
    with reader_in_transaction(url), ThreadPoolExecutor(1) as pool:
        running = pool.submit(synced, url, simulator)
        when_sync_waits_or_ends(url, running)
        assert second_reader_sees(url) > 0
        assert running.result(timeout=60) == 0  # the pytest timeout bounds it too, should it hang


@pytest.mark.timeout(120)
def test_a_changed_view_is_applied_by_the_next_run_and_a_busy_one_by_the_run_after(
        url, simulator, views_dir, caplog):
    synced(url, simulator)
    view_file = views_dir / f"{VIEW}.sql"
    select = view_file.read_text(encoding="utf-8")
    view_file.write_text(select.replace("COUNT(*) AS jobs", "COUNT(*) AS jobs, MIN(created_at) AS first_created_at"))
    synced(url, simulator)
    assert view_columns(url)[-1] == "first_created_at"

    view_file.write_text(select.replace("COUNT(*) AS jobs", "COUNT(*) AS jobs, MAX(created_at) AS last_created_at"))
    with reader_in_transaction(url), caplog.at_level(logging.WARNING, logger="pipeline.warehouse.views"):
        synced(url, simulator)  # finishes although the view is busy
        assert second_reader_sees(url, "first_created_at") > 0  # left as it was
    [warning] = [r.getMessage() for r in caplog.records if r.name == "pipeline.warehouse.views"]
    assert warning.startswith(f"view {VIEW} not replaced: a reader's open transaction")
    assert view_columns(url)[-1] == "first_created_at"

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline.warehouse.views"):
        synced(url, simulator)
    assert view_columns(url)[-1] == "last_created_at"
    assert not [r for r in caplog.records if r.name == "pipeline.warehouse.views"]
    assert second_reader_sees(url, "last_created_at") > 0


@pytest.mark.timeout(120)
def test_a_view_dropped_by_hand_is_created_again_by_the_next_run(url, simulator):
    synced(url, simulator)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP VIEW {VIEW}")
    engine.dispose()
    synced(url, simulator)
    assert second_reader_sees(url) > 0
