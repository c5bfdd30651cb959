"""The generic warehouse path (any SQLAlchemy database without a fast upsert), on a real MariaDB through PyMySQL:
the same rows and the same latest-state rule as the fast paths of SQLite and PostgreSQL, one transaction per
load, row locks against lost updates, and every read, view and check the pipeline uses.

The behaviours every database must have run on MariaDB too, as a parameter of the ``warehouse`` fixture
(test_warehouse.py, test_upsert_paths.py, ...); a Dagster run on MariaDB: tests/e2e/test_assets.py."""

import logging
import threading
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

import pipeline.warehouse.store as warehouse_module
from pipeline.api.auth import TokenAuth
from pipeline.api.client import DdsTaskCenterClient
from pipeline.config import ConfigError, Deployment
from pipeline.simulator import DdsSimulator, SimulatorConfig
from tests.support.paths import SQL_DIR
from pipeline.sync import sync_days
from tests.support.records import api_record
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.upserts.generic import upsert_generic
from pipeline.warehouse.upserts.postgres import upsert_postgres
from pipeline.warehouse.upserts.sqlite import UpsertCounts, upsert_sqlite
from pipeline.warehouse.views import View, load_views
from tests.support.dagster_helpers import expected_jobs, yesterday
from tests.support.job_rows import CREATED, DAY, MONDAY, TUESDAY, month, rows
from tests.support.warehouse_helpers import assert_same_as_sqlite_fast_path, load_concurrently, stored

# --- The fast paths stay where they are ----------------------------------------------------------------------


def test_sqlite_and_postgresql_keep_their_fast_upserts(fast_path_warehouse_url, monkeypatch):
    used = []

    def recording(fast):
        def upsert(connection, frame, unknown):
            used.append(fast)
            return fast(connection, frame, unknown)
        return upsert

    for dialect, fast in list(warehouse_module._UPSERTS.items()):
        monkeypatch.setitem(warehouse_module._UPSERTS, dialect, recording(fast))
    monkeypatch.setattr(warehouse_module, "upsert_generic_retrying", pytest.fail)
    store = Warehouse(fast_path_warehouse_url)
    store.upsert(rows([api_record("a", CREATED)]))
    store.dispose()
    assert used == [upsert_sqlite if store.dialect == "sqlite" else upsert_postgres]


# --- URLs ------------------------------------------------------------------------------------------------------


def test_a_url_whose_driver_is_not_installed_is_refused_in_one_line_without_its_password(tmp_path):
    env = {"DDS_DATA_DIR": str(tmp_path), "DDS_WAREHOUSE_URL": "mysql+mysqldb://etl:s3cret-pw@db.example.com/dds"}
    with pytest.raises(ConfigError) as caught:
        Deployment.from_env(env)
    message = str(caught.value)
    assert "DDS_WAREHOUSE_URL" in message and "'mysqldb' is not installed" in message
    assert "s3cret-pw" not in message and "\n" not in message


@pytest.mark.parametrize("url, reason", [("mysql+aiomysql://u:hunter2@h/x", "asyncio driver"),
                                         ("nosuchdb://u:hunter2@h/x", "no dialect")])
def test_an_unsupported_database_is_named_in_one_line(url, reason):
    with pytest.raises(ValueError, match=reason) as error:
        Warehouse(url)
    assert url.split(":")[0] in str(error.value) and "hunter2" not in str(error.value)


def test_a_mariadb_url_is_taken_without_connecting():
    for url in ("mysql+pymysql://etl:hunter2@127.0.0.1:1/dds", "mariadb+pymysql://etl:hunter2@127.0.0.1:1/dds"):
        store = Warehouse(url)
        assert store.dialect == url.split("+")[0] and "hunter2" not in repr(store)


# --- MariaDB: schema, rule and transactions ---------------------------------------------------------------------


def test_the_schema_on_mariadb_has_keys_microseconds_and_case_sensitive_text(mariadb):
    mariadb.ensure_schema()
    inspector = sa.inspect(mariadb.engine)
    columns = {c["name"]: c["type"] for c in inspector.get_columns("dds_jobs")}
    assert columns["id"].length == 255 and columns["id"].collation == "utf8mb4_bin"
    assert columns["created_at"].fsp == 6
    assert inspector.get_pk_constraint("dds_jobs")["constrained_columns"] == ["project_id", "id"]
    assert {("created_date",), ("status",), ("instance_id",)} <= {
        tuple(ix["column_names"]) for ix in inspector.get_indexes("dds_jobs")}
    assert {view.name for view in load_views()} <= set(inspector.get_view_names())
    # Two task ids that differ only in case are two jobs, as on SQLite and PostgreSQL.
    mariadb.upsert(rows([api_record("job-a", CREATED), api_record("JOB-A", CREATED)]))
    assert stored(mariadb)["id"].tolist() == ["JOB-A", "job-a"]


def test_a_resync_with_fewer_jobs_deletes_nothing_and_counts_right(mariadb):
    frame = rows(month(120))
    days = sorted(set(frame["created_date"]))
    mariadb.upsert(frame)
    again = rows(month(120)[:30] + [api_record(f"new-{i}", CREATED) for i in range(5)], TUESDAY)
    assert mariadb.upsert(again) == UpsertCounts(inserted=5, updated=30)
    after = stored(mariadb, days)
    assert len(after) == 125 and (after["last_seen_at"] == pd.Timestamp(TUESDAY)).sum() == 35


def test_text_timestamps_and_nulls_survive(mariadb):
    reason = ('复制集 "quoted", \'single\' 100%\n\t ✗ ' * 5000)[:100_000]
    record = {**api_record("job", CREATED, status="Failed", instance_name="数据库-ü", fail_reason=reason),
              "created_at": "2026-11-01T17:30:00.250+08:00", "name": None}
    mariadb.upsert(rows([record], datetime(2026, 11, 2, 0, 0, 0, 123456, tzinfo=timezone.utc)))
    row = stored(mariadb).iloc[0]
    assert (row["instance_name"], row["fail_reason"], row["name"]) == ("数据库-ü", reason, None)
    assert row["created_at"] == pd.Timestamp("2026-11-01 09:30:00.250", tz="UTC")
    assert row["last_seen_at"] == pd.Timestamp("2026-11-02 00:00:00.123456", tz="UTC")


def test_a_concurrent_load_waits_for_the_row_lock_instead_of_losing_an_update(mariadb, mariadb_url):
    mariadb.upsert(rows([api_record("job", CREATED, status="Running", progress="10%")], MONDAY))
    other, errors = Warehouse(mariadb_url), []
    # Read without the lock, the second load would see the stored Running row and write its own later Running
    # state over the first load's Completed.
    later_running = rows([api_record("job", CREATED, status="Running", progress="50%")], TUESDAY + timedelta(hours=1))

    def load_later_running() -> None:
        try:
            other.upsert(later_running)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with mariadb.engine.connect() as connection, connection.begin():
        upsert_generic(connection, rows([api_record("job", CREATED, status="Completed")], TUESDAY))
        loader = threading.Thread(target=load_later_running)
        loader.start()
        loader.join(timeout=1.0)
        assert loader.is_alive(), "the second load did not wait for the first one's row lock"
    loader.join(timeout=60)
    other.dispose()
    assert errors == []
    [row] = stored(mariadb).to_dict("records")
    assert (row["status"], row["last_seen_at"]) == ("Completed", pd.Timestamp(TUESDAY + timedelta(hours=1)))


def test_concurrent_loads_of_the_same_new_jobs_all_succeed(mariadb, mariadb_url):
    frame = rows(month(300))
    seen = [frame.assign(last_seen_at=pd.Timestamp(MONDAY + timedelta(hours=i))) for i in range(4)]
    load_concurrently(mariadb_url, seen, repeat=3)
    after = stored(mariadb, sorted(set(frame["created_date"])))
    assert len(after) == 300 and (after["last_seen_at"] == pd.Timestamp(MONDAY + timedelta(hours=3))).all()


# --- The same rule as the fast path, on any sequence of loads -----------------------------------------------------

@pytest.mark.parametrize("backend", ["generic_sqlite", "mariadb"])
def test_the_generic_path_keeps_the_same_state_and_counts_as_the_fast_path(backend, request, tmp_path):
    assert_same_as_sqlite_fast_path(request.getfixturevalue(backend), tmp_path)


# --- Reads, views, checks and queries ---------------------------------------------------------------------------


def test_reads_by_day_count_status_and_query_on_mariadb(mariadb):
    mariadb.upsert(rows([api_record("a", CREATED), api_record("b", CREATED, status="Running"),
                         api_record("c", CREATED + timedelta(days=2), status="Running")]))
    mariadb.upsert(rows([api_record("a", CREATED)], project_id="proj-2"))
    days = [DAY + timedelta(days=i) for i in range(3)]
    assert mariadb.count_by_day(days) == dict(zip(days, [3, 0, 1]))
    assert mariadb.count_by_day([DAY], project_id="proj-2") == {DAY: 1}
    assert mariadb.days_with_status("Running", since=DAY) == [DAY, days[2]]
    assert mariadb.days_with_status("Running", since=DAY, project_id="proj-2") == []
    assert mariadb.day_batches(days, max_rows=3) == [[DAY, days[1]], [days[2]]]
    assert list(mariadb.read_days([DAY], project_id="proj-2")["project_id"]) == ["proj-2"]
    beijing = timezone(timedelta(hours=8))
    found = mariadb.query("SELECT id FROM dds_jobs WHERE created_date BETWEEN :first AND :last "
                          "AND created_at < :before AND status IN :statuses ORDER BY id", first=DAY, last=days[2],
                          before=(CREATED + timedelta(minutes=1)).astimezone(beijing), statuses=["Running"])
    assert found["id"].tolist() == ["b"]
    with pytest.raises(ValueError, match="return rows"):
        mariadb.query("DELETE FROM dds_jobs")
    assert mariadb.query("SELECT COUNT(*) AS n FROM dds_jobs")["n"].tolist() == [4]


def test_views_and_checks_answer_on_mariadb(mariadb):
    mariadb.upsert(rows(month(200) + [api_record("bad", CREATED, ended_at=CREATED - timedelta(minutes=5))]))
    daily = mariadb.query("SELECT day, SUM(jobs) AS jobs FROM dds_jobs_daily_status GROUP BY day ORDER BY day")
    assert daily["jobs"].astype(int).tolist() == list(mariadb.count_by_day(daily["day"].tolist()).values())
    failed = mariadb.query("SELECT COUNT(*) AS n FROM dds_jobs WHERE status = 'Failed'")["n"].iloc[0]
    assert len(mariadb.query("SELECT * FROM dds_jobs_failed")) == failed > 0
    assert not mariadb.query("SELECT * FROM dds_jobs_duration_by_name").empty
    latest = mariadb.query("SELECT instance_id, COUNT(*) AS n FROM dds_jobs_instance_latest GROUP BY instance_id")
    assert (latest["n"] == 1).all()
    window = {"first_day": DAY - timedelta(days=1), "last_day": DAY + timedelta(days=30)}
    assert mariadb.query((SQL_DIR / "checks" / "duplicate_keys.sql").read_text(), **window).empty
    ended_early = mariadb.query((SQL_DIR / "checks" / "ended_before_created.sql").read_text(), **window)
    assert ended_early["id"].tolist() == ["bad"]


def test_a_view_the_database_refuses_is_skipped_with_one_warning_line(mariadb, monkeypatch, caplog):
    refused = View("dds_jobs_refused", "SELECT COUNT(*) FILTER (WHERE status = 'Failed') AS failed FROM dds_jobs")
    monkeypatch.setattr("pipeline.warehouse.views.load_views", lambda: [*load_views(), refused])
    with caplog.at_level(logging.WARNING, logger="pipeline.warehouse.views"):
        mariadb.ensure_schema()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "pipeline.warehouse.views"]
    assert warning.startswith(f"view dds_jobs_refused not created: {mariadb.dialect} refuses its SQL")
    assert "\n" not in warning
    assert {view.name for view in load_views()} <= set(sa.inspect(mariadb.engine).get_view_names())


# --- Whole syncs --------------------------------------------------------------------------------------------------


def test_a_sync_against_the_simulator_lands_the_same_rows_as_on_sqlite(mariadb, sqlite_url):
    last = yesterday()
    days = [last - timedelta(days=2), last - timedelta(days=1), last]
    config = SimulatorConfig(seed=5, jobs_per_day=150, history_days=10, token="t")
    with DdsSimulator(config, port=0) as sim:
        reference = Warehouse(sqlite_url)
        first_syncs = []
        for store in (reference, mariadb):
            with DdsTaskCenterClient(sim.url, sim.project_id, TokenAuth("t")) as client:
                first_syncs.append(sync_days(client, store, days, now=sim.store.now))
        sim.store.complete_running()
        for store in (reference, mariadb):
            with DdsTaskCenterClient(sim.url, sim.project_id, TokenAuth("t")) as client:
                sync_days(client, store, days, now=sim.store.now)
        want = expected_jobs(sim, days[0], last)
    on_sqlite, on_mariadb = first_syncs
    assert (on_mariadb.inserted, on_mariadb.updated) == (on_sqlite.inserted, 0) and on_sqlite.inserted > 0
    pd.testing.assert_frame_equal(mariadb.read_days(days), reference.read_days(days))
    assert sorted(mariadb.read_days(days)["id"]) == sorted(want)
    assert "Running" not in set(mariadb.read_days(days)["status"])
    reference.dispose()
