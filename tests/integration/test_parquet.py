"""ParquetStore on real files: hive layout every reader understands, per-day merges, atomic day rewrites."""

from datetime import timedelta

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipeline.records.schema import COLUMN_NAMES, PANDAS_DTYPES
from pipeline.snapshots.store import ParquetStore
from tests.support.records import api_record
from tests.support.job_rows import CREATED, DAY, MONDAY, TUESDAY, by_key, rows
from tests.support.parquet_damage import fail_writes_from


@pytest.fixture
def store(tmp_path) -> ParquetStore:
    return ParquetStore(tmp_path / "parquet")


def test_round_trip_keeps_values_and_dtypes(store, week):
    written = store.write_days(week)
    days = sorted(set(week["created_date"]))
    assert written == week.groupby(week["created_date"].to_numpy(dtype=object)).size().to_dict()
    assert sorted(written) == days and all(store.day_path(d).joinpath("part-0.parquet").is_file() for d in days)
    for read in (store.read_all(), store.read_days(days)):
        assert list(read.columns) == list(COLUMN_NAMES) and read.dtypes.to_dict() == PANDAS_DTYPES
        pd.testing.assert_frame_equal(by_key(read), by_key(week))


def test_the_partition_key_lives_in_the_folder_name_only(store, week):
    store.write_days(week)
    path = store.day_path(DAY) / "part-0.parquet"
    assert path.parent.name == f"created_date={DAY.isoformat()}"
    assert "created_date" not in pq.read_schema(path).names


def duckdb_count(store: ParquetStore, what: str = "count(*)") -> tuple:
    glob = store.root / "dds_jobs" / "**" / "*.parquet"
    return duckdb.sql(f"SELECT {what} FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()[0]


def test_pyarrow_pandas_and_duckdb_read_the_whole_dataset_in_one_call(store, week):
    store.write_days(week)
    keys = set(zip(week["project_id"], week["id"]))
    table = ds.dataset(store.root / "dds_jobs", partitioning="hive").to_table()
    assert set(zip(table["project_id"].to_pylist(), table["id"].to_pylist())) == keys and table.num_rows == len(week)
    frame = pd.read_parquet(store.root / "dds_jobs")
    assert len(frame) == len(week)
    assert set(frame["created_date"].astype(str)) == {day.isoformat() for day in week["created_date"]}
    count, first, ids = duckdb_count(store, "count(*), min(created_date), count(DISTINCT id)")
    assert (count, first, ids) == (len(week), min(week["created_date"]), len(week))


def test_a_later_state_replaces_the_stored_one_and_first_seen_stays(store):
    store.write_days(rows([api_record("job", CREATED, status="Running", progress="30%")], MONDAY))
    assert store.write_days(rows([api_record("job", CREATED), api_record("new", CREATED)], TUESDAY)) == {DAY: 2}
    job = store.read_days([DAY]).set_index("id").loc["job"]
    assert job["status"] == "Completed" and pd.isna(job["progress_pct"])
    assert (job["first_seen_at"], job["last_seen_at"]) == (pd.Timestamp(MONDAY), pd.Timestamp(TUESDAY))


def test_a_stale_running_state_never_replaces_a_terminal_one(store):
    store.write_days(rows([api_record("job", CREATED, status="Failed", fail_reason="quota")], MONDAY))
    store.write_days(rows([api_record("job", CREATED, status="Running")], TUESDAY))
    [job] = store.read_days([DAY]).to_dict("records")
    assert (job["status"], job["fail_reason"], job["last_seen_at"]) == ("Failed", "quota", pd.Timestamp(TUESDAY))


def test_writing_fewer_jobs_deletes_none(store, week):
    store.write_days(week)
    some_day = week[week["created_date"] == DAY]
    assert store.write_days(some_day.head(3)) == {DAY: len(some_day)}
    assert len(store.read_all()) == len(week)


def test_temporary_leftovers_are_ignored_by_readers_and_cleaned_by_the_next_write(store, week):
    store.write_days(week)
    leftover = store.day_path(DAY) / ".part-0.4f1c.tmp"
    leftover.write_bytes(b"half a parquet file from a crashed write")
    assert len(store.read_all()) == len(pd.read_parquet(store.root / "dds_jobs")) == len(week)
    assert duckdb_count(store) == (len(week),)
    store.write_days(week[week["created_date"] == DAY])
    assert not leftover.exists()


def test_a_write_that_fails_half_way_leaves_the_day_as_it_was(store, week, monkeypatch):
    store.write_days(week)
    before = store.read_days([DAY])
    real_write_table = pq.write_table

    def crash_half_way(table, where, **kwargs):
        real_write_table(table.slice(0, table.num_rows // 2), where, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash_half_way)  # the library call, not ours: a crash mid-write
    changed = week[week["created_date"] == DAY].assign(status="Failed", last_seen_at=pd.Timestamp(TUESDAY))
    with pytest.raises(OSError, match="disk full"):
        store.write_days(changed)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.read_days([DAY]), before)
    assert sorted(p.name for p in store.day_path(DAY).iterdir()) == [".lock", "part-0.parquet"]


def test_a_write_of_many_days_that_fails_on_one_leaves_every_day_as_it_was(store, week, monkeypatch):
    store.write_days(week)
    days = sorted(set(week["created_date"]))
    before = store.read_days(days)
    calls = fail_writes_from(3, monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        store.write_days(week.assign(status="Failed", last_seen_at=pd.Timestamp(TUESDAY)))
    monkeypatch.undo()
    # The days are renamed into place only once all are written: the two written before the failure are not either.
    assert len(calls) == 3
    pd.testing.assert_frame_equal(store.read_days(days), before)
    assert {p.name for day in days for p in store.day_path(day).iterdir()} == {".lock", "part-0.parquet"}


def test_a_daily_write_reads_only_the_days_it_writes(store, week):
    store.write_days(week)
    other_day = DAY + timedelta(days=3)
    (store.day_path(other_day) / "part-0.parquet").write_bytes(b"not parquet at all")
    on_day = len(week[week["created_date"] == DAY])
    assert store.write_days(rows([api_record("late", CREATED)], TUESDAY)) == {DAY: on_day + 1}
    assert "late" in set(store.read_days([DAY])["id"])


def test_reading_days_without_files_gives_an_empty_frame(store):
    for frame in (store.read_days([DAY]), store.read_all()):
        assert frame.empty and frame.dtypes.to_dict() == PANDAS_DTYPES


def test_non_ascii_and_long_text_survive(store):
    reason = ("节点故障 ✗ " * 20000)[:100_000]
    store.write_days(rows([api_record("job", CREATED, status="Failed", instance_name="数据库", fail_reason=reason)]))
    [job] = store.read_days([DAY]).to_dict("records")
    assert (job["instance_name"], job["fail_reason"]) == ("数据库", reason)


def test_bad_input_is_refused_before_anything_is_written(store, week):
    with pytest.raises(ValueError, match="missing \\['status'\\]"):
        store.write_days(week.drop(columns=["status"]))
    with pytest.raises(ValueError, match="a single date"):
        store.read_days(DAY)
    with pytest.raises(ValueError, match="Parquet root"):
        ParquetStore("")
    assert not store.root.exists()


def test_a_file_put_into_a_day_by_hand_is_read_then_merged_into_the_day(store):
    store.write_days(rows([api_record("job", CREATED, status="Running")], MONDAY))
    original = store.day_path(DAY) / "part-0.parquet"
    (store.day_path(DAY) / "copied-by-hand.parquet").write_bytes(original.read_bytes())
    assert store.read_days([DAY])["id"].tolist() == ["job", "job"]  # what every other reader sees too
    assert store.write_days(rows([api_record("job", CREATED)], TUESDAY)) == {DAY: 1}
    assert [p.name for p in store.day_path(DAY).glob("*.parquet")] == ["part-0.parquet"]
    assert store.read_days([DAY])["status"].tolist() == ["Completed"]
