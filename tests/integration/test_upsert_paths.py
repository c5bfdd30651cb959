"""The upsert's own paths, on real SQLite and PostgreSQL: the first load into an empty table (no conflict checks,
SQLite's indexes built after the rows, PostgreSQL's rows copied straight in), the columns SQLite gets as literals,
and PostgreSQL's binary COPY stream. What every path must do here runs on MariaDB's generic path too."""

import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.records.schema import COLUMN_NAMES
from tests.support.records import api_record, synthetic_records
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.upserts.sqlite import SqliteRows, UpsertCounts
from tests.support.job_rows import CREATED, DAY, MONDAY, TUESDAY, rows
from tests.support.warehouse_helpers import (
    assert_same_as_sqlite_fast_path,
    load_concurrently,
    poison_inserts_of,
    stored,
)

INDEXED = {("created_date",), ("status",), ("instance_id",)}


def indexed_columns(warehouse: Warehouse) -> set[tuple[str, ...]]:
    return {tuple(index["column_names"]) for index in sa.inspect(warehouse.engine).get_indexes("dds_jobs")}


def test_the_first_load_into_an_empty_table_counts_inserts_and_keeps_the_indexes(warehouse):
    frame = rows(synthetic_records(500, DAY, days=3, seed=3))
    assert warehouse.upsert(frame) == UpsertCounts(inserted=500, updated=0)
    assert INDEXED <= indexed_columns(warehouse)
    days = sorted(set(frame["created_date"]))
    assert sorted(stored(warehouse, days)["id"]) == sorted(frame["id"])
    # The next load takes the conflict path over what the first one wrote.
    assert warehouse.upsert(frame) == UpsertCounts(inserted=0, updated=500)


def test_precedence_holds_over_rows_of_the_empty_table_load(warehouse):
    warehouse.upsert(rows([api_record("done", CREATED, status="Completed"), api_record("busy", CREATED, status="Running")],
                          TUESDAY))
    later = rows([api_record("done", CREATED, status="Running"), api_record("busy", CREATED, status="Failed"),
                  api_record("new", CREATED)], MONDAY)
    assert warehouse.upsert(later) == UpsertCounts(inserted=1, updated=2)
    by_id = stored(warehouse).set_index("id")
    assert by_id.loc["done", "status"] == "Completed" and by_id.loc["busy", "status"] == "Failed"
    assert (by_id["first_seen_at"] == pd.Timestamp(MONDAY)).all()
    assert (by_id.loc[["done", "busy"], "last_seen_at"] == pd.Timestamp(TUESDAY)).all()


def test_a_failed_load_into_an_empty_table_leaves_it_empty_with_its_indexes(warehouse):
    frame = rows([api_record(f"job-{i:03d}", CREATED) for i in range(100)])
    poison_inserts_of(warehouse, "job-050")
    with pytest.raises(Exception, match="injected failure"):
        warehouse.upsert(frame)
    assert stored(warehouse).empty
    assert INDEXED <= indexed_columns(warehouse)


@pytest.mark.postgres
def test_loads_racing_into_an_empty_postgresql_table_each_count_right(postgres_url):
    Warehouse(postgres_url).ensure_schema()
    frame = rows(synthetic_records(2000, DAY, days=3, seed=5))
    seen = [frame.assign(last_seen_at=pd.Timestamp(MONDAY + timedelta(hours=h))) for h in range(3)]
    counts = load_concurrently(postgres_url, seen, together=True)
    assert sorted(counts, key=lambda c: c.inserted) == [UpsertCounts(0, 2000)] * 2 + [UpsertCounts(2000, 0)]
    table = stored(Warehouse(postgres_url), sorted(set(frame["created_date"])))
    assert len(table) == 2000 and (table["last_seen_at"] == pd.Timestamp(MONDAY + timedelta(hours=2))).all()


def test_values_shared_by_every_row_round_trip_as_literals(warehouse):
    quoted = "it's \"quoted\"; DROP TABLE dds_jobs; -- 数据库"
    frame = rows([api_record(f"job-{i}", CREATED, instance_name=quoted, fail_reason=quoted, status="Failed")
                  for i in range(3)], project_id="o'brien")
    warehouse.upsert(frame)
    warehouse.upsert(frame)  # the same literals through the ON CONFLICT path
    table = warehouse.query("SELECT * FROM dds_jobs ORDER BY id")
    assert table["project_id"].tolist() == ["o'brien"] * 3
    assert table["instance_name"].tolist() == [quoted] * 3 and table["fail_reason"].tolist() == [quoted] * 3
    assert table["region"].tolist() == ["ap-southeast-1"] * 3 and table["raw_record"].isna().all()


def test_only_the_syncs_own_values_become_literals_and_what_the_api_sent_is_bound():
    quoted = "it's ✗"
    frame = rows([api_record(f"job-{i}", CREATED, instance_name=quoted, fail_reason=quoted, status="Failed")
                  for i in range(3)], project_id="o'brien")
    rows_of_frame = SqliteRows.of(frame)
    statement, values = rows_of_frame.statement(), rows_of_frame.values()
    placeholders = statement[statement.index("VALUES (") + len("VALUES ("):statement.rindex(")")]
    written = dict(zip(COLUMN_NAMES, (value.strip() for value in placeholders.split(", "))))
    # The same instance, reason and status on every row: still bound, as every value of the API's records.
    all_null = {name for name in COLUMN_NAMES if frame[name].isna().all()}
    literal = {name for name, value in written.items() if value != "?"}
    assert literal == {"project_id", "region", "first_seen_at", "last_seen_at"} | all_null
    assert {written[name] for name in all_null} == {"NULL"} and written["project_id"] == "'o''brien'"
    assert written["instance_name"] == written["fail_reason"] == written["status"] == "?"
    assert all(len(row) == len(COLUMN_NAMES) - len(literal) for row in values)


def test_a_single_row_is_loaded_and_updated(warehouse):
    assert warehouse.upsert(rows([api_record("only", CREATED, status="Running")])) == UpsertCounts(1, 0)
    assert warehouse.upsert(rows([api_record("only", CREATED)], TUESDAY)) == UpsertCounts(0, 1)
    [row] = stored(warehouse).to_dict("records")
    assert (row["status"], row["last_seen_at"]) == ("Completed", pd.Timestamp(TUESDAY))


def test_nuls_nulls_and_extreme_instants_survive_the_load(warehouse):
    far = {**api_record("far", CREATED), "created_at": "1970-01-01T00:00:00.000001Z", "ended_at": "2999-12-31T23:59:59Z"}
    records = [api_record("nul", CREATED, status="Failed", fail_reason="bad\x00byte ✗"), far,
               {**api_record("none", CREATED, status="Running", progress="60%"), "name": None}]
    frame = rows(records, datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=timezone.utc))
    warehouse.upsert(frame)
    table = warehouse.query("SELECT * FROM dds_jobs ORDER BY id")
    by_id = {row["id"]: row for row in table.to_dict("records")}
    nul = by_id["nul"]["fail_reason"]
    # PostgreSQL text cannot hold NUL: the frame holds it escaped, stored alike on every database.
    assert nul == "bad\\x00byte ✗"
    assert pd.isna(by_id["none"]["name"]) and by_id["none"]["progress_pct"] == 60.0
    assert pd.isna(by_id["none"]["ended_at"]) and pd.isna(by_id["none"]["duration_seconds"])
    read = warehouse.read_days([datetime(1970, 1, 1).date()]).iloc[0]
    assert read["created_at"] == pd.Timestamp("1970-01-01 00:00:00.000001", tz="UTC")
    assert read["ended_at"] == pd.Timestamp("2999-12-31 23:59:59", tz="UTC")
    assert read["last_seen_at"] == pd.Timestamp("2026-11-02 08:00:00.123456", tz="UTC")


def _executed(warehouse: Warehouse, load) -> list[str]:
    """The statements SQLite ran during ``load()``, one entry per execution (executemany: one per row)."""
    statements: list[str] = []

    def trace(dbapi_connection, *_) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    sa.event.listen(warehouse.engine, "checkout", trace)
    try:
        load()
    finally:
        sa.event.remove(warehouse.engine, "checkout", trace)
    return statements


def _moving_resync(warehouse: Warehouse) -> pd.DataFrame:
    """20 Running jobs loaded; then the re-sync (Tuesday) that _check_moving_resync checks the outcome of."""
    jobs = [api_record(f"job-{i}", CREATED, status="Running", progress="10%") for i in range(20)]
    warehouse.upsert(rows(jobs))
    later = list(jobs)
    later[0] = api_record("job-0", CREATED, status="Completed")                      # status moves
    later[1] = api_record("job-1", CREATED, status="Running", instance_id="other")   # instance moves
    later[2] = api_record("job-2", CREATED + timedelta(days=1), status="Running")    # day moves
    later[3] = api_record("job-3", CREATED, status="Running", progress="90%")       # only unindexed values move
    later.append(api_record("job-new", CREATED, status="Running"))
    return rows(later, TUESDAY)


def _check_moving_resync(warehouse: Warehouse) -> None:
    table = warehouse.read_days([DAY, DAY + timedelta(days=1)]).set_index("id")
    assert len(table) == 21 and (table["last_seen_at"] == pd.Timestamp(TUESDAY)).all()
    assert (table["first_seen_at"].drop("job-new") == pd.Timestamp(MONDAY)).all()
    assert table.loc["job-0", "status"] == "Completed" and table.loc["job-1", "instance_id"] == "other"
    assert table.loc["job-2", "created_date"] == DAY + timedelta(days=1) and table.loc["job-3", "progress_pct"] == 90


def test_a_resync_moving_status_instance_and_day_lands_every_change(warehouse):
    resync = _moving_resync(warehouse)
    assert warehouse.upsert(resync) == UpsertCounts(inserted=1, updated=20)
    _check_moving_resync(warehouse)


def test_a_resync_rewrites_in_place_only_what_keeps_its_indexed_values(sqlite_url):
    store = Warehouse(sqlite_url)
    store.ensure_schema()
    resync = _moving_resync(store)
    statements = _executed(store, lambda: store.upsert(resync))
    in_place = [s for s in statements if " WHERE dds_jobs.created_date IS " in s]
    full = [s for s in statements if "CASE WHEN" in s]
    # Every row is tried in place; only the three whose indexed values moved take the full rule.
    assert len(in_place) == 21 and len(full) == 3
    _check_moving_resync(store)
    store.dispose()


def test_rows_that_leave_their_indexed_values_are_the_only_ones_given_the_full_rule(sqlite_url):
    store = Warehouse(sqlite_url)
    store.ensure_schema()
    jobs = [api_record(f"job-{i}", CREATED, status="Running") for i in range(20)]
    store.upsert(rows(jobs))
    later = [api_record(f"job-{i}", CREATED, status="Completed" if i < 3 else "Running") for i in range(20)]
    statements = _executed(store, lambda: store.upsert(rows(later, TUESDAY)))
    assert len([s for s in statements if " WHERE dds_jobs.created_date IS " in s]) == 20
    assert len([s for s in statements if "CASE WHEN" in s]) == 3
    table = store.read_days([DAY]).set_index("id")
    assert table["status"].value_counts().to_dict() == {"Running": 17, "Completed": 3}
    store.dispose()


def test_a_stale_load_after_a_later_one_keeps_the_later_state_in_every_column(warehouse):
    first = [api_record(f"job-{i}", CREATED, status="Running", progress="10%") for i in range(4)]
    wednesday = TUESDAY + timedelta(days=1)
    warehouse.upsert(rows(first))
    warehouse.upsert(rows(first, wednesday))
    # Seen on Tuesday, between the two (a slow run committing late): it changes nothing but a terminal status.
    stale = [api_record("job-0", CREATED, status="Running", progress="5%"),
             api_record("job-1", CREATED, status="Completed"),
             api_record("job-2", CREATED, status="Running", progress="5%", instance_id="moved")]
    assert warehouse.upsert(rows(stale, TUESDAY)) == UpsertCounts(inserted=0, updated=3)
    table = stored(warehouse).set_index("id")
    assert table.loc["job-0", "progress_pct"] == 10 and table.loc["job-2", "instance_id"] != "moved"
    assert table.loc["job-1", "status"] == "Completed"
    assert (table["first_seen_at"] == pd.Timestamp(MONDAY)).all()
    assert (table["last_seen_at"] == pd.Timestamp(wednesday)).all()


def test_a_row_moved_out_of_the_loads_days_sends_the_whole_load_to_the_full_rule(sqlite_url):
    store = Warehouse(sqlite_url)
    store.ensure_schema()
    later_day = CREATED + timedelta(days=3)
    store.upsert(rows([api_record("moved", CREATED, status="Running"), api_record("kept", later_day)]))
    # "moved" is stored under DAY, outside the days of this load: it cannot be told apart by its day, so every row
    # takes the full rule, which leaves the row already written in place as it is.
    again = rows([api_record("moved", later_day, status="Completed"), api_record("kept", later_day)], TUESDAY)
    statements = _executed(store, lambda: store.upsert(again))
    assert len([s for s in statements if "CASE WHEN" in s]) == 2
    table = store.read_days([DAY, later_day.date()]).set_index("id")
    assert table["created_date"].tolist() == [later_day.date()] * 2 and table.loc["moved", "status"] == "Completed"
    assert (table["last_seen_at"] == pd.Timestamp(TUESDAY)).all()
    store.dispose()


def test_an_earlier_first_sighting_in_a_later_load_still_lowers_first_seen_at(warehouse):
    jobs = [api_record(f"job-{i}", CREATED, status="Running") for i in range(3)]
    warehouse.upsert(rows(jobs, TUESDAY))
    # A frame merged from two syncs: it saw the jobs first on Monday, last on Wednesday.
    merged = rows(jobs, TUESDAY + timedelta(days=1)).assign(first_seen_at=pd.Timestamp(MONDAY))
    warehouse.upsert(merged)
    table = stored(warehouse)
    assert (table["first_seen_at"] == pd.Timestamp(MONDAY)).all()
    assert (table["last_seen_at"] == pd.Timestamp(TUESDAY + timedelta(days=1))).all()


def _update_counts(url: str, expected: int) -> tuple[int, int]:
    """(HOT updates, updates) of dds_jobs, once the server's statistics count ``expected`` updates (or after 10 s)."""
    engine = sa.create_engine(url)
    try:
        deadline = time.monotonic() + 10
        with engine.connect() as connection:
            while True:
                connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
                hot, updated = connection.exec_driver_sql(
                    "SELECT n_tup_hot_upd, n_tup_upd FROM pg_stat_user_tables "
                    "WHERE relname = 'dds_jobs' AND schemaname = current_schema()").one()
                if updated >= expected or time.monotonic() > deadline:
                    return hot, updated
                time.sleep(0.1)
    finally:
        engine.dispose()


def test_postgresql_resyncs_update_rows_on_their_own_pages(postgres_url):
    store = Warehouse(postgres_url)
    store.ensure_schema()
    frame = rows(synthetic_records(3000, DAY, days=3, seed=9))
    store.upsert(frame)
    for hours in (1, 2):  # the second re-sync reuses the room the first one's dead row versions left
        store.upsert(frame.assign(last_seen_at=pd.Timestamp(MONDAY + timedelta(hours=hours))))
    store.dispose()  # a backend reports its statistics when it ends
    hot, updated = _update_counts(postgres_url, 6000)
    # Nearly every update stayed on its page without new index entries (a HOT update); at fillfactor 70, 30%.
    assert updated == 6000 and hot >= 0.95 * updated


@pytest.mark.postgres
def test_postgresql_keeps_the_same_state_and_counts_as_sqlite_on_any_loads(postgres_url, tmp_path):
    store = Warehouse(postgres_url)
    store.ensure_schema()
    assert_same_as_sqlite_fast_path(store, tmp_path)
    store.dispose()
