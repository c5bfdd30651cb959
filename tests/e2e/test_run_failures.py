"""Failures in the middle of a run, in real Dagster runs: a Parquet day that cannot be written, the warehouse's
connection lost. Each ends the run with one line saying what failed where, and the daily schedule asks for the
days again (from the warehouse's sync ledger, so a fresh Dagster home asks too) until a run has stored and
snapshotted them."""

import threading
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance

from pipeline.defs.partitions import range_tags
from pipeline.snapshots.store import ParquetStore
from tests.support.dagster_helpers import expected_jobs, last_day, pipeline_under_test
from tests.support.reliability_helpers import (
    assert_exact_data,
    failure_messages,
    lock_row,
    middle_job_id,
    stored_jobs,
    wait_for,
    waiting_upserts,
)
from tests.support.read_only import read_only
from tests.support.schedule_helpers import asked_days, evaluate_daily_schedule, tick_at

JOBS, PARQUET = AssetKey("dds_jobs"), AssetKey("dds_jobs_parquet")


def run(p, first, last, *assets: AssetKey):
    """One run of ``assets`` (both by default) over first..last, its errors kept in the result."""
    job = p.definitions().resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=p.instance, tags=range_tags(first, last), raise_on_error=False,
                                  asset_selection=list(assets or (JOBS, PARQUET)))


def asked_by_a_fresh_dagster_home(p, tmp_path: Path, name: str) -> list[tuple[str, str]]:
    """The days the next morning's tick asks for, evaluated in a Dagster home that knows none of the runs."""
    (tmp_path / name).mkdir()
    with DagsterInstance.local_temp(str(tmp_path / name)) as fresh:
        return asked_days(evaluate_daily_schedule(p, tick_at(last_day() + timedelta(days=1)), instance=fresh))


@pytest.mark.parametrize("order", ["after-the-load", "before-the-load"])
def test_a_parquet_day_that_cannot_be_written_fails_in_one_line_and_is_asked_for_until_written(
    tmp_path, monkeypatch, order
):
    last = last_day()
    first = last - timedelta(days=1)
    monkeypatch.setenv("DDS_START_DATE", first.isoformat())
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=40) as p:
        store = ParquetStore(p.settings.parquet_root)
        blocked = Path(store.day_path(first))
        if order == "before-the-load":
            # Stored and snapshotted; then the snapshot of the day fails first, and a later run loads the day again.
            assert run(p, first, last).success
            for old in blocked.iterdir():
                old.unlink()
            blocked.rmdir()
        # The day's folder cannot be made: a file holds its name.
        blocked.parent.mkdir(parents=True, exist_ok=True)
        blocked.write_text("not a folder")
        failed = run(p, first, last, PARQUET) if order == "before-the-load" else run(p, first, last)
        assert not failed.success
        [message] = failure_messages(failed)
        line = (f"Parquet day {first.isoformat()}: cannot write {blocked}: Not a directory "
                f"(the Parquet root {p.settings.parquet_root}, set by DDS_DATA_DIR)")
        assert message.endswith(line) and "\n" not in message, message
        if order == "before-the-load":
            assert run(p, first, last, JOBS).success
        # The load committed, whichever came first: the warehouse holds the days.
        assert set(stored_jobs(p.settings.warehouse_url)["id"]) == expected_jobs(p.sim, first, last).keys()

        # The next morning's tick asks for the day again, also from a Dagster home that knows none of these runs.
        asked = asked_by_a_fresh_dagster_home(p, tmp_path, "fresh-home")
        assert asked == [(first.isoformat(), last.isoformat())], asked
        print(f"\nParquet day blocked ({order}): the run failed with {line!r}; the next tick asked for {asked}")

        blocked.unlink()
        assert run(p, first, last).success
        assert_exact_data(p, first, last)
        assert asked_by_a_fresh_dagster_home(p, tmp_path, "fresh-home-2") == [(last.isoformat(), last.isoformat())]


@pytest.mark.postgres
def test_the_warehouse_lost_in_the_middle_of_a_run_fails_in_one_line_and_the_next_run_heals(
    tmp_path, monkeypatch, postgres_url
):
    monkeypatch.setenv("DDS_WAREHOUSE_URL", postgres_url)
    last = last_day()
    first = last - timedelta(days=2)
    engine = sa.create_engine(postgres_url)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=300) as p:
        assert run(p, first, last).success
        p.sim.store.complete_running()
        before = stored_jobs(postgres_url)
        terminated: list[int] = []

        def restart_the_run_s_connection() -> None:
            # As a server restart does: the run's connection is cut while its upsert is inside its transaction.
            with engine.connect() as holder, holder.begin():
                lock_row(holder, middle_job_id(postgres_url))
                wait_for(lambda: waiting_upserts(engine), "the run's upsert")
                [server_pid] = waiting_upserts(engine)
                with engine.connect() as admin:
                    admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": server_pid})
                terminated.append(server_pid)

        cutter = threading.Thread(target=restart_the_run_s_connection)
        cutter.start()
        try:
            failed = run(p, first, last)
        finally:
            cutter.join()
        assert terminated and not failed.success
        [message] = failure_messages(failed)
        assert "\n" not in message and "the warehouse failed during the run (the postgresql server" in message
        # The driver's own reason (psycopg: "the connection is lost").
        assert "set by DDS_WAREHOUSE_URL): the connection is lost; " in message
        assert "INSERT" not in message  # the driver's reason, without SQLAlchemy's statement
        # Nothing of the cut run's load was committed; the next run heals.
        pd.testing.assert_frame_equal(stored_jobs(postgres_url), before)
        assert run(p, first, last).success
        assert_exact_data(p, first, last)
        print(f"\nwarehouse connection cut mid-load: {message[message.index('the warehouse'):]}")
    engine.dispose()


@pytest.mark.parametrize("variable", ["DDS_PARQUET_ROOT", "DDS_DATA_DIR"])
def test_a_parquet_root_gone_read_only_is_blamed_on_the_variable_that_set_it(tmp_path, monkeypatch, variable):
    root = tmp_path / "snapshots"
    if variable == "DDS_PARQUET_ROOT":
        monkeypatch.setenv("DDS_PARQUET_ROOT", str(root))
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=10) as p:
        root = Path(p.settings.parquet_root)
        root.mkdir(parents=True)
        # Writable when the definitions loaded (the load checks it), read-only by the time the run writes.
        with read_only(root):
            failed = run(p, last_day(), last_day())
        assert not failed.success
        [message] = failure_messages(failed)
        assert "\n" not in message and f"cannot write {root}/dds_jobs" in message, message
        assert message.endswith(f"(the Parquet root {root}, set by {variable})"), message
        assert run(p, last_day(), last_day()).success


@pytest.mark.parametrize("variable", ["DDS_WAREHOUSE_URL", "DDS_DATA_DIR"])
def test_a_warehouse_folder_gone_read_only_is_blamed_on_the_variable_that_set_it(tmp_path, monkeypatch, variable):
    folder = tmp_path / ("warehouse" if variable == "DDS_WAREHOUSE_URL" else "data")
    folder.mkdir()
    if variable == "DDS_WAREHOUSE_URL":
        monkeypatch.setenv("DDS_WAREHOUSE_URL", f"sqlite:///{folder / 'dds.db'}")
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=10) as p:
        with read_only(folder):
            failed = run(p, last_day(), last_day())
        assert not failed.success
        [message] = failure_messages(failed)
        assert "\n" not in message and f"configuration error: {variable}: cannot open the warehouse" in message, message
        other = {"DDS_WAREHOUSE_URL", "DDS_DATA_DIR"} - {variable}
        assert other.pop() not in message
        assert run(p, last_day(), last_day()).success
