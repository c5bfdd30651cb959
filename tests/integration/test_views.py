"""The analyst views and example queries of sql/ answer the same on SQLite, PostgreSQL and MariaDB."""

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from functools import partial

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.history import day_state
from pipeline.records.normalize import normalize_jobs
from tests.support.paths import SQL_DIR
from tests.support.records import api_record, synthetic_records
from pipeline.warehouse.ledger import Attempt, record_sync
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.views import load_views
from tests.support.job_rows import DAY

SEEN = datetime(2026, 11, 9, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
QUERY_PARAMS = {"first_day": DAY, "last_day": DAY + timedelta(days=6), "created_before": T0 + timedelta(days=3)}


def synced_week(url: str) -> Iterator[Warehouse]:
    """The warehouse at ``url`` holding a week of jobs and a few planted ones, its first week synced."""
    store = Warehouse(url)
    store.ensure_schema()
    records = synthetic_records(500, DAY, days=7, seed=11) + [
        api_record("bk-1", T0, name="MongodbSnapshotBackup", status="Failed", instance_id="inst-a", fail_reason="x"),
        api_record("bk-2", T0 + timedelta(days=1), name="MongodbSnapshotEBackup", status="Failed",
                   instance_id="inst-a", fail_reason="y"),
        api_record("bk-3", T0 + timedelta(days=2), name="MongodbSnapshotBackup", status="Failed", instance_id="inst-b"),
        api_record("rs-1", T0, name="ResizeMongoDBInstance", ended_at=T0 + timedelta(minutes=30)),
        api_record("rs-2", T0, name="ResizeMongoDBInstance", ended_at=T0 + timedelta(minutes=90)),
        api_record("old", T0 - timedelta(days=40), name="MongodbSnapshotBackup", status="Failed", instance_id="inst-c"),
        api_record("stuck", T0, status="Running", progress="5%"),
    ]
    # The first week synced, as the sync ledger records it (dds_jobs_coverage reads the ledger).
    store.upsert(normalize_jobs(records, "proj-1", SEEN).frame, then=partial(
        record_sync, attempt=Attempt("proj-1", SEEN), jobs_by_day={DAY + timedelta(days=n): None for n in range(7)}))
    yield store
    store.dispose()


@pytest.fixture
def warehouse(warehouse_url):
    yield from synced_week(warehouse_url)


@pytest.fixture
def jobs(warehouse) -> pd.DataFrame:
    return warehouse.query("SELECT * FROM dds_jobs")


def test_ensure_schema_creates_every_view_file_and_recreates_them(warehouse):
    names = [view.name for view in load_views()]
    assert len(names) >= 4
    warehouse.ensure_schema()
    for name in names:
        assert not warehouse.query(f"SELECT * FROM {name}").empty


def test_daily_status_counts_jobs_per_day_and_status(warehouse, jobs):
    view = warehouse.query("SELECT project_id, day, status, jobs FROM dds_jobs_daily_status")
    expected = jobs.groupby(["project_id", "created_date", "status"]).size()
    got = view.assign(day=view["day"].astype(str)).set_index(["project_id", "day", "status"])["jobs"]
    assert got.sort_index().to_dict() == {(p, str(d), s): n for (p, d, s), n in expected.items()}


def test_failed_lists_every_failed_job_with_its_reason(warehouse, jobs):
    view = warehouse.query("SELECT id, fail_reason FROM dds_jobs_failed")
    failed = jobs[jobs["status"] == "Failed"]
    assert dict(zip(view["id"], view["fail_reason"])) == dict(zip(failed["id"], failed["fail_reason"]))


def test_duration_by_name_summarises_each_task_kind(warehouse):
    jobs = warehouse.query("SELECT * FROM dds_jobs")
    view = warehouse.query("SELECT * FROM dds_jobs_duration_by_name").set_index("name")
    for name, group in jobs.groupby("name"):
        row = view.loc[name]
        assert row["jobs"] == len(group) and row["failed_jobs"] == (group["status"] == "Failed").sum()
        assert row["finished_jobs"] == group["duration_seconds"].notna().sum()
        assert row["avg_duration_seconds"] == pytest.approx(group["duration_seconds"].mean())
        assert row["max_duration_seconds"] == group["duration_seconds"].max()


def test_instance_latest_gives_the_last_created_job_of_each_instance(warehouse, jobs):
    view = warehouse.query("SELECT instance_id, id FROM dds_jobs_instance_latest")
    created = pd.to_datetime(jobs["created_at"], utc=True)
    latest = jobs.assign(created=created).sort_values(["created", "id"]).groupby("instance_id").tail(1)
    assert dict(zip(view["instance_id"], view["id"])) == dict(zip(latest["instance_id"], latest["id"]))


@pytest.mark.parametrize("path", sorted((SQL_DIR / "queries").glob("*.sql")), ids=lambda p: p.stem)
def test_every_example_query_runs(warehouse, path):
    sql = path.read_text(encoding="utf-8")
    params = {name: value for name, value in QUERY_PARAMS.items() if f":{name}" in sql}
    warehouse.query(sql, **params)


def test_failed_backups_by_instance_answers_the_quarter_question(warehouse):
    sql = (SQL_DIR / "queries" / "failed_backups_by_instance.sql").read_text(encoding="utf-8")
    found = warehouse.query(sql, first_day=DAY, last_day=DAY + timedelta(days=6))
    mine = found[found["instance_id"].isin(["inst-a", "inst-b", "inst-c"])]
    assert mine[["instance_id", "failed_backups"]].values.tolist() == [["inst-a", 2], ["inst-b", 1]]


def test_resize_durations_reports_minutes(warehouse):
    sql = (SQL_DIR / "queries" / "resize_durations.sql").read_text(encoding="utf-8")
    found = warehouse.query(sql, first_day=DAY, last_day=DAY).set_index("name")
    assert float(found.loc["ResizeMongoDBInstance", "max_minutes"]) >= 90.0
    assert found.loc["ResizeMongoDBInstance", "resizes"] >= 2


def test_running_longer_than_finds_the_stuck_job(warehouse):
    sql = (SQL_DIR / "queries" / "running_longer_than.sql").read_text(encoding="utf-8")
    found = warehouse.query(sql, created_before=T0 + timedelta(minutes=1))
    assert "stuck" in set(found["id"])
    assert "stuck" not in set(warehouse.query(sql, created_before=T0)["id"])


# Session time zones far from UTC: together, at any hour, one of them is already or still on another day than UTC
# (+08:00 from 16:00 UTC, +13:00 from 11:00 UTC, -12:00 until 12:00 UTC).
SESSION_ZONES = ["+08:00", "+13:00", "-12:00"]


@pytest.mark.parametrize("zone", SESSION_ZONES)
def test_coverage_counts_ages_from_the_utc_day_whatever_the_session_time_zone(server_warehouse_url, zone):
    store = Warehouse(server_warehouse_url)
    utc_today = datetime.now(timezone.utc).date()
    days = [utc_today - timedelta(days=n) for n in (0, 1, 2, 23, 31)]
    with store.transaction() as connection:
        record_sync(connection, Attempt("proj-tz", datetime.now(timezone.utc)), {day: None for day in days})
    store.dispose()
    engine = sa.create_engine(server_warehouse_url)
    try:
        with engine.connect() as reader:
            if engine.dialect.name == "postgresql":
                reader.exec_driver_sql(f"SET TIME ZONE INTERVAL '{zone}' HOUR TO MINUTE")
            else:
                reader.exec_driver_sql(f"SET time_zone = '{zone}'")
            rows = reader.exec_driver_sql("SELECT created_date, age_days, state FROM dds_jobs_coverage").all()
    finally:
        engine.dispose()
    after = datetime.now(timezone.utc).date()  # the query may straddle UTC midnight: either day is right then
    ages = {day: (int(age), state) for day, age, state in rows}
    assert ages in [{day: ((today - day).days, day_state(day, today, synced=False, failed=False)) for day in days}
                    for today in {utc_today, after}]


def test_counts_and_sums_read_back_as_numbers_on_every_database(warehouse):
    # A SUM of integers is a DECIMAL on MariaDB and a numeric on PostgreSQL (a Decimal from their drivers), which
    # pandas cannot compute on and Dagster's metadata shows as text.
    view = warehouse.query(
        "SELECT jobs, failed_jobs, finished_jobs, avg_duration_seconds FROM dds_jobs_duration_by_name")
    assert {column: str(dtype) for column, dtype in view.dtypes.items()} == {
        "jobs": "int64", "failed_jobs": "int64", "finished_jobs": "int64", "avg_duration_seconds": "float64"}
    sums = warehouse.query("SELECT status, SUM(jobs) AS jobs, SUM(jobs) / 2.0 AS halves, SUM(CASE WHEN status = 'x' "
                           "THEN jobs END) AS none_counted FROM dds_jobs_daily_status GROUP BY status")
    assert str(sums["jobs"].dtype) == "int64" and sums["jobs"].sum() == len(warehouse.query("SELECT id FROM dds_jobs"))
    assert str(sums["halves"].dtype) == "float64" and (sums["halves"] * 2 == sums["jobs"]).all()
    assert sums["none_counted"].isna().all()
