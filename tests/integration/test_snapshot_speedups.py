"""The faster paths of the sync and snapshot give what the general ones give: Arrow reads and writes of the warehouse
and the snapshots, the snapshot check's shortcut, the client's request preparation and page keys, and the cast that
reads the API's timestamps."""

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest
import requests

from pipeline.api.auth import AkSkAuth, TokenAuth
from pipeline.api.http import JobsHttp
from pipeline.api.pagination import job_key, job_keys
from pipeline.records.normalize import normalize_jobs
from pipeline.records.schema import ARROW_SCHEMA, COLUMN_NAMES, arrow_to_frame
from pipeline.snapshots.compare import compare_rows
from pipeline.snapshots.store import ParquetStore
from tests.support.records import api_record, synthetic_records
from pipeline.warehouse.store import Warehouse

DAY = date(2026, 11, 1)
SEEN = datetime(2026, 11, 9, tzinfo=timezone.utc)
COMPARED = ("project_id", "id", "created_date", "status", "last_seen_at")


@pytest.fixture
def week() -> pd.DataFrame:
    return normalize_jobs(synthetic_records(300, DAY, days=7, seed=5), "proj-1", SEEN).frame


@pytest.fixture
def warehouse(tmp_path, week) -> Warehouse:
    stored = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    stored.upsert(week)
    yield stored
    stored.dispose()


def days_of(frame: pd.DataFrame) -> list[date]:
    return sorted(set(frame["created_date"]))


def test_the_warehouse_read_as_arrow_is_the_frame_read_in_the_schema_types(warehouse, week):
    days = days_of(week)
    for columns in (COLUMN_NAMES, COMPARED):
        table = warehouse.read_days_table(days, columns=columns)
        assert table.schema == pa.schema([field for field in ARROW_SCHEMA if field.name in columns])
        pd.testing.assert_frame_equal(arrow_to_frame(table, table.column_names), warehouse.read_days(days, columns=columns))
    keys = warehouse.read_days_table(days).select(["project_id", "id"]).to_pylist()
    assert keys == sorted(keys, key=lambda key: (key["project_id"], key["id"])) and len(keys) == len(week)
    assert warehouse.read_days_table([]).num_rows == 0


def test_an_arrow_table_and_a_frame_write_the_same_snapshot(tmp_path, warehouse, week):
    days = days_of(week)
    from_arrow, from_frame = ParquetStore(tmp_path / "arrow"), ParquetStore(tmp_path / "frame")
    assert from_arrow.write_days(warehouse.read_days_table(days)) == from_frame.write_days(week)
    pd.testing.assert_frame_equal(from_arrow.read_days(days), from_frame.read_days(days))
    # Merged into stored days by the same rule: a later sighting of the same jobs.
    later = week.assign(last_seen_at=pd.Timestamp(SEEN + timedelta(hours=1)))
    from_arrow.write_days(pa.Table.from_pandas(later, schema=ARROW_SCHEMA, preserve_index=False))
    from_frame.write_days(later)
    pd.testing.assert_frame_equal(from_arrow.read_days(days), from_frame.read_days(days))


def test_a_snapshot_read_of_some_columns_is_those_columns_of_the_full_read(tmp_path, week):
    store = ParquetStore(tmp_path / "parquet")
    store.write_days(week)
    days = [*days_of(week), DAY + timedelta(days=30)]  # a day without a file gives no rows
    table = store.read_days_table(days, columns=COMPARED)
    assert table.column_names == [name for name in COLUMN_NAMES if name in COMPARED]
    pd.testing.assert_frame_equal(arrow_to_frame(table, table.column_names), store.read_days(days)[list(table.column_names)])
    assert store.read_days_table([DAY + timedelta(days=30)], columns=COMPARED).num_rows == 0


def test_an_arrow_table_of_another_schema_or_with_nulls_where_forbidden_is_refused(tmp_path, warehouse, week):
    store = ParquetStore(tmp_path / "parquet")
    table = warehouse.read_days_table(days_of(week))
    with pytest.raises(ValueError, match="Arrow table of their schema"):
        store.write_days(table.drop_columns(["status"]))
    no_ids = table.set_column(1, ARROW_SCHEMA.field("id"), pa.nulls(table.num_rows, pa.string()))
    with pytest.raises(ValueError, match="'id' must not be null"):
        store.write_days(no_ids)
    assert not store.root.exists()


def test_the_comparison_shortcut_agrees_only_when_the_full_comparison_finds_nothing(tmp_path, warehouse, week):
    store = ParquetStore(tmp_path / "parquet")
    store.write_days(week)
    days = days_of(week)
    stored, snapshot = warehouse.read_days_table(days, columns=COMPARED), store.read_days_table(days, columns=COMPARED)
    assert compare_rows(stored, snapshot).agrees  # the same keys in another order: the aligned shortcut
    status = snapshot.column_names.index("status")
    broken = {
        "a row missing": (snapshot.slice(1), stored, {"missing": 1}),
        "a key twice on both sides": (pa.concat_tables([snapshot, snapshot.slice(0, 1)]),
                                      pa.concat_tables([stored, stored.slice(0, 1)]),
                                      {"doubled": 1, "doubled_in_warehouse": 1}),
        "another status": (snapshot.set_column(status, "status", pa.array(["Zzz"] * snapshot.num_rows)), stored,
                           {"changed": snapshot.num_rows}),
    }
    for what, (theirs, ours, counts) in broken.items():
        difference = compare_rows(ours, theirs)
        assert not difference.agrees, what
        assert {name: getattr(difference, name) for name in counts} == counts, what
        assert difference.jobs == sum(counts.values()), what


def test_a_job_without_status_on_both_sides_is_in_the_same_state(tmp_path):
    frame = normalize_jobs([{**api_record("job", datetime(2026, 11, 1, 9, tzinfo=timezone.utc)), "status": None}],
                           "proj-1", SEEN).frame
    table = pa.Table.from_pandas(frame[list(COMPARED)], preserve_index=False)
    assert compare_rows(table, table).agrees


@pytest.mark.parametrize("jobs", [
    [{"id": "a"}, {"id": "b"}, {"id": "a"}], [{"id": "a"}, {"name": "no id"}], [{"id": ""}], [{"id": 7}],
    [{"id": ["x"]}], ["text", None, 3], [{"id": "a"}, [1]], [],
])
def test_page_keys_are_the_keys_of_each_job(jobs):
    assert job_keys(jobs) == set(map(job_key, jobs))


@pytest.mark.parametrize("auth", [None, TokenAuth("token-1"), AkSkAuth("AK1234567890", "secret-key")],
                         ids=["none", "token", "aksk"])
def test_a_request_is_prepared_as_requests_would_prepare_it(auth):
    http = JobsHttp("https://dds.example.com/base path", "proj-1", auth, timeout=(1, 1), verify=True, pool_size=1)
    params = {"start_time": "2026-11-01T00:00:00+0800", "end_time": "2026-11-02T00:00:00+0800", "offset": 100,
              "limit": 100, "name": "a b&c/d~é"}
    ours = http.prepare(params)
    theirs = requests.Request("GET", f"{http.url}?{'&'.join(ours.url.split('?', 1)[1:])}",
                              headers=http._session.headers, auth=auth).prepare()
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    # Signatures hold the time of signing; everything else is equal.
    assert {k: v for k, v in ours.headers.items() if k not in ("X-Sdk-Date", "Authorization")} == \
        {k: v for k, v in theirs.headers.items() if k not in ("X-Sdk-Date", "Authorization")}
    http.close()


def test_timestamps_read_by_the_cast_equal_those_read_one_by_one():
    created = datetime(2026, 11, 1, 22, 30, 5, tzinfo=timezone.utc)
    forms = ["2026-11-02T06:30:05+0800", "2026-11-01T22:30:05Z", "2026-11-01T19:00:05-03:30", "2026-11-01 22:30:05+00"]
    records = [{**api_record(f"job-{i}", created), "created_at": text} for i, text in enumerate(forms)]
    together = normalize_jobs(records, "proj-1", SEEN)
    # The same records beside one without offset: the cast fails for the batch and every value is read apart.
    apart = normalize_jobs([*records, {**api_record("naive", created), "created_at": "2026-11-01T22:30:05"}],
                           "proj-1", SEEN)
    assert set(together.frame["created_at"]) == {pd.Timestamp(created)}
    pd.testing.assert_frame_equal(together.frame, apart.frame.iloc[:len(records)])
    assert together.anomalies == 0 and apart.anomalies == 1
