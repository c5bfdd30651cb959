"""Warehouse on real SQLite, PostgreSQL and MariaDB: upserts keep the latest state, roll back whole, and reads hit
the index."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.records.schema import COLUMN_NAMES, PANDAS_DTYPES
from tests.support.records import api_record, synthetic_records
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.upserts.sqlite import UpsertCounts
from tests.support.job_rows import CREATED, DAY, MONDAY, TUESDAY, month, rows
from tests.support.warehouse_helpers import load_concurrently, poison_inserts_of, stored


def test_ensure_schema_is_idempotent_and_creates_table_indexes_and_views(warehouse):
    warehouse.ensure_schema()
    inspector = sa.inspect(warehouse.engine)
    assert [c["name"] for c in inspector.get_columns("dds_jobs")] == list(COLUMN_NAMES)
    assert inspector.get_pk_constraint("dds_jobs")["constrained_columns"] == ["project_id", "id"]
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("dds_jobs")}
    assert {("created_date",), ("status",), ("instance_id",)} <= indexed
    assert {"dds_jobs_daily_status", "dds_jobs_failed"} <= set(inspector.get_view_names())


def test_loading_twice_gives_the_same_table(warehouse):
    frame = rows(month())
    days = sorted(set(frame["created_date"]))
    assert warehouse.upsert(frame) == UpsertCounts(inserted=len(frame), updated=0)
    first = stored(warehouse, days)
    assert warehouse.upsert(frame) == UpsertCounts(inserted=0, updated=len(frame))
    pd.testing.assert_frame_equal(stored(warehouse, days), first)
    expected = frame.sort_values(["project_id", "id"], ignore_index=True)
    pd.testing.assert_frame_equal(first, expected)


def test_a_late_update_leaves_one_row_in_the_final_state(warehouse):
    warehouse.upsert(rows([api_record("job", CREATED, status="Running", progress="40%")], MONDAY))
    counts = warehouse.upsert(rows([api_record("job", CREATED, status="Completed")], TUESDAY))
    assert counts == UpsertCounts(inserted=0, updated=1)
    [row] = stored(warehouse).to_dict("records")
    assert row["status"] == "Completed" and pd.isna(row["progress_pct"])
    assert row["ended_at"] == pd.Timestamp(CREATED + timedelta(seconds=90)) and row["duration_seconds"] == 90.0
    assert (row["first_seen_at"], row["last_seen_at"]) == (pd.Timestamp(MONDAY), pd.Timestamp(TUESDAY))


def test_a_stale_running_answer_never_overwrites_a_terminal_state(warehouse):
    warehouse.upsert(rows([api_record("job", CREATED, status="Failed", fail_reason="disk full")], MONDAY))
    warehouse.upsert(rows([api_record("job", CREATED, status="Running", progress="10%")], TUESDAY))
    [row] = stored(warehouse).to_dict("records")
    assert (row["status"], row["fail_reason"], row["last_seen_at"]) == ("Failed", "disk full", pd.Timestamp(TUESDAY))


def test_a_terminal_state_seen_earlier_still_beats_a_stored_running_one(warehouse):
    warehouse.upsert(rows([api_record("job", CREATED, status="Running")], TUESDAY))
    warehouse.upsert(rows([api_record("job", CREATED, status="Completed")], MONDAY))
    [row] = stored(warehouse).to_dict("records")
    assert row["status"] == "Completed"
    assert (row["first_seen_at"], row["last_seen_at"]) == (pd.Timestamp(MONDAY), pd.Timestamp(TUESDAY))


def test_an_older_answer_of_equal_rank_does_not_replace_a_newer_one(warehouse):
    warehouse.upsert(rows([api_record("job", CREATED, status="Running", progress="70%")], TUESDAY))
    warehouse.upsert(rows([api_record("job", CREATED, status="Running", progress="20%")], MONDAY))
    [row] = stored(warehouse).to_dict("records")
    assert row["progress_pct"] == 70.0 and row["first_seen_at"] == pd.Timestamp(MONDAY)


def test_a_resync_with_fewer_jobs_deletes_nothing(warehouse):
    frame = rows(month(120))
    days = sorted(set(frame["created_date"]))
    warehouse.upsert(frame)
    counts = warehouse.upsert(rows(month(120)[:30], TUESDAY))
    assert counts == UpsertCounts(inserted=0, updated=30)
    after = stored(warehouse, days)
    assert len(after) == 120 and (after["last_seen_at"] == pd.Timestamp(TUESDAY)).sum() == 30


def test_rows_of_one_key_in_one_frame_are_reduced_to_the_latest(warehouse):
    older = rows([api_record("job", CREATED, status="Running")], MONDAY)
    newer = rows([api_record("job", CREATED)], TUESDAY)
    assert warehouse.upsert(pd.concat([newer, older])) == UpsertCounts(inserted=1, updated=0)
    assert stored(warehouse)["status"].tolist() == ["Completed"]


def test_a_batch_said_to_be_reduced_yet_holding_a_job_twice_is_refused_before_any_write(warehouse):
    # The sync reduces its batch once and hands it over as it is: a job twice would be a bug, never data.
    older = rows([api_record("job", CREATED, status="Running")], MONDAY)
    newer = rows([api_record("job", CREATED)], TUESDAY)
    with pytest.raises(ValueError, match=r"one row per \(project_id, id\)"):
        warehouse.upsert_latest(pd.concat([newer, older]))
    assert warehouse.upsert_latest(newer) == UpsertCounts(inserted=1, updated=0)
    assert stored(warehouse)["status"].tolist() == ["Completed"]


def test_a_failure_mid_load_rolls_back_everything(warehouse):
    first = rows(month(200))
    days = sorted(set(first["created_date"]))
    warehouse.upsert(first)
    before = stored(warehouse, days)
    changed = first.assign(status="Failed", fail_reason="second load", last_seen_at=pd.Timestamp(TUESDAY))
    new = rows([api_record(f"new-{i:03d}", CREATED) for i in range(100)], TUESDAY)
    poison_inserts_of(warehouse, "new-050")  # keys load in order: half the batch is in when it fails
    with pytest.raises(Exception, match="injected failure"):  # the driver's own error: raised by SQLite or PostgreSQL
        warehouse.upsert(pd.concat([changed, new], ignore_index=True))
    pd.testing.assert_frame_equal(stored(warehouse, days), before)


def test_timestamps_come_back_utc_aware_with_the_same_instants(warehouse):
    beijing = timezone(timedelta(hours=8))
    record = {**api_record("job", CREATED), "created_at": "2026-11-01T17:30:00.250+08:00",
              "ended_at": "2026-11-01T09:45:00Z"}
    warehouse.upsert(rows([record], datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=beijing)))
    row = stored(warehouse).iloc[0]
    assert row["created_at"] == pd.Timestamp("2026-11-01 09:30:00.250", tz="UTC")
    assert row["ended_at"] == pd.Timestamp("2026-11-01 09:45", tz="UTC")
    assert row["last_seen_at"] == pd.Timestamp("2026-11-02 00:00:00.123456", tz="UTC")
    assert stored(warehouse).dtypes.to_dict() == PANDAS_DTYPES


def test_text_survives_non_ascii_100_kb_and_quotes(warehouse):
    reason = ('复制集 "quoted", \'single\'\n\t ✗ ' * 5000)[:100_000]
    warehouse.upsert(rows([api_record("job", CREATED, status="Failed", instance_name="数据库-ü", fail_reason=reason)]))
    row = stored(warehouse).iloc[0]
    assert (row["instance_name"], row["fail_reason"]) == ("数据库-ü", reason)


def test_empty_strings_and_nulls_stay_distinct(warehouse):
    record = {**api_record("job", CREATED, instance_name=""), "name": None}
    warehouse.upsert(rows([record]))
    row = stored(warehouse).iloc[0]
    assert row["instance_name"] == "" and row["name"] is None


def test_reads_by_day_count_and_status(warehouse):
    warehouse.upsert(rows([api_record("a", CREATED), api_record("b", CREATED, status="Running"),
                           api_record("c", CREATED + timedelta(days=2), status="Running")]))
    warehouse.upsert(rows([api_record("a", CREATED)], project_id="proj-2"))
    assert warehouse.count_by_day([DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]) == {
        DAY: 3, DAY + timedelta(days=1): 0, DAY + timedelta(days=2): 1}
    assert warehouse.count_by_day([DAY], project_id="proj-2") == {DAY: 1}
    assert warehouse.days_with_status("Running", since=DAY) == [DAY, DAY + timedelta(days=2)]
    assert warehouse.days_with_status("Running", since=DAY + timedelta(days=1)) == [DAY + timedelta(days=2)]
    assert warehouse.days_with_status("Running", since=DAY, project_id="proj-2") == []
    assert list(warehouse.read_days([DAY], project_id="proj-2")["project_id"]) == ["proj-2"]
    assert warehouse.read_days([]).empty and list(warehouse.read_days([]).columns) == list(COLUMN_NAMES)


def test_query_binds_dates_datetimes_and_lists(warehouse):
    warehouse.upsert(rows([api_record("a", CREATED), api_record("b", CREATED + timedelta(hours=2), status="Failed"),
                           api_record("c", CREATED + timedelta(days=3))]))
    beijing = timezone(timedelta(hours=8))
    found = warehouse.query(
        "SELECT id FROM dds_jobs WHERE created_date BETWEEN :first AND :last AND created_at > :after "
        "AND status IN :statuses ORDER BY id",
        first=DAY, last=DAY + timedelta(days=1), after=(CREATED + timedelta(minutes=1)).astimezone(beijing),
        statuses=["Failed", "Completed"],
    )
    assert found["id"].tolist() == ["b"]


def test_query_cannot_change_anything(warehouse):
    warehouse.upsert(rows([api_record("a", CREATED)]))
    with pytest.raises(ValueError, match="return rows"):
        warehouse.query("DELETE FROM dds_jobs")
    assert warehouse.query("SELECT count(*) AS n FROM dds_jobs")["n"].tolist() == [1]


def test_reads_of_days_use_the_created_date_index(sqlite_url):
    warehouse = Warehouse(sqlite_url)
    warehouse.upsert(rows(month(50)))
    statements = []

    def record(conn, cursor, sql, params, context, executemany):
        statements.append((sql, params))

    sa.event.listen(warehouse.engine, "before_cursor_execute", record)
    warehouse.read_days([DAY])
    warehouse.count_by_day([DAY, DAY + timedelta(days=1)])
    sa.event.remove(warehouse.engine, "before_cursor_execute", record)
    plans = []
    with warehouse.engine.connect() as connection:
        for sql, params in [s for s in statements if "dds_jobs" in s[0]]:
            plans.append(" ".join(r[-1] for r in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)))
    assert len(plans) == 2
    assert all("ix_dds_jobs_created_date" in plan for plan in plans), plans
    warehouse.dispose()


def test_concurrent_writers_wait_for_each_other(warehouse_url):
    Warehouse(warehouse_url).ensure_schema()
    batches = [rows(synthetic_records(300, DAY, days=3, seed=seed)) for seed in range(4)]
    load_concurrently(warehouse_url, batches, repeat=3, ensure_schema=True)
    reader = Warehouse(warehouse_url)
    assert sum(reader.count_by_day([DAY + timedelta(days=i) for i in range(3)]).values()) == 1200
    reader.dispose()


def test_a_bad_frame_is_refused_before_anything_is_written(warehouse):
    frame = rows([api_record("a", CREATED), api_record("b", CREATED)])
    with pytest.raises(ValueError, match="missing \\['region'\\]"):
        warehouse.upsert(frame.drop(columns=["region"]))
    with pytest.raises(ValueError, match="'created_at' must not be null"):
        warehouse.upsert(frame.assign(created_at=[frame["created_at"][0], pd.NaT]))
    with pytest.raises(ValueError, match="column 'progress_pct' cannot be read as double"):
        warehouse.upsert(frame.assign(progress_pct="sixty"))
    with pytest.raises(ValueError, match="DataFrame"):
        warehouse.upsert([{"id": "a"}])
    assert warehouse.count_by_day([DAY]) == {DAY: 0}


@pytest.mark.parametrize(
    "url, message",
    [("", "non-empty"), ("not a url", "malformed"), ("mysql://root:hunter2@db/x", "unsupported warehouse database"),
     ("postgresql+psycopg2://u:hunter2@h/db", "psycopg 3"), ("sqlite+aiosqlite:///x.db", "unsupported")],
)
def test_a_bad_url_is_refused_in_one_line_without_its_password(url, message):
    with pytest.raises(ValueError, match=message) as error:
        Warehouse(url)
    assert "hunter2" not in str(error.value) and "\n" not in str(error.value)


def test_repr_hides_the_password_and_nothing_connects_on_construction():
    warehouse = Warehouse("postgresql://reader:hunter2@127.0.0.1:1/warehouse")
    assert "hunter2" not in repr(warehouse) and "reader" in repr(warehouse)
    assert warehouse.dialect == "postgresql"
    with pytest.raises(sa.exc.OperationalError) as error:
        warehouse.ensure_schema()
    assert "hunter2" not in str(error.value)


def test_a_sqlite_file_gets_its_folder_created(tmp_path):
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'deep' / 'er' / 'warehouse.db'}")
    warehouse.upsert(rows([api_record("a", CREATED)]))
    assert (tmp_path / "deep" / "er" / "warehouse.db").is_file()
    assert warehouse.query("PRAGMA journal_mode")["journal_mode"].tolist() == ["wal"]
    warehouse.dispose()


def test_nul_characters_do_not_break_a_postgresql_load(postgres_url):
    warehouse = Warehouse(postgres_url)
    warehouse.upsert(rows([api_record("a", CREATED, status="Failed", fail_reason="bad\x00byte")]))
    assert stored(warehouse)["fail_reason"].tolist() == ["bad\\x00byte"]  # escaped in the frame, never stripped
    warehouse.dispose()
