"""Damage done to real Parquet snapshot files, as disks, people and other tools do it, and the exact-data verdict
the healing tests share (local disk and object storage alike, through the store's pyarrow filesystem); the jobs
their warehouses hold."""

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.records.normalize import normalize_jobs
from pipeline.records.schema import ARROW_SCHEMA, COLUMN_NAMES
from pipeline.snapshots.store import DAY_FILE, FILE_SCHEMA, ParquetStore
from tests.support.records import synthetic_records
from pipeline.warehouse.store import Warehouse

GARBAGE = b"this is not a parquet file\n" * 20
# When the healing tests' warehouses saw their jobs: after the week from tests.support.job_rows.DAY.
SEEN = datetime(2026, 11, 8, 0, 15, tzinfo=timezone.utc)


def jobs(count: int, first: date, days: int, seed: int, seen: datetime = SEEN) -> pd.DataFrame:
    """``count`` jobs created over ``days`` days from ``first``, as one sync seen at ``seen`` normalizes them."""
    return normalize_jobs(synthetic_records(count, first, days=days, seed=seed), "proj-1", seen).frame


def fail_writes_from(call: int, monkeypatch) -> list[object]:
    """Make the ``call``-th Parquet file write (pyarrow's own call, not ours) fail with "disk full", as a full disk
    does; the places written so far (the list grows as writes are tried)."""
    real_write_table, calls = pq.write_table, []

    def failing(table, where, **kwargs):
        calls.append(where)
        if len(calls) == call:
            raise OSError("disk full")
        real_write_table(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing)
    return calls


def day_file(store: ParquetStore, day: date, name: str = DAY_FILE) -> str:
    """A file of a day, as the store's filesystem names it."""
    return f"{str(store.day_path(day)).removeprefix('s3://')}/{name}"


def read_bytes(store: ParquetStore, path: str) -> bytes:
    with store.filesystem.open_input_stream(path.removeprefix("s3://")) as stream:
        return stream.read()


def write_bytes(store: ParquetStore, path: str, data: bytes) -> None:
    with store.filesystem.open_output_stream(path.removeprefix("s3://")) as stream:
        stream.write(data)


def truncate(store: ParquetStore, day: date) -> bytes:
    """Cut a day's part-0.parquet to its first 300 bytes (a copy or a disk that stopped half-way); the bytes left."""
    path = day_file(store, day)
    cut = read_bytes(store, path)[:300]
    write_bytes(store, path, cut)
    return cut


def edit_rows(store: ParquetStore, day: date, edit) -> None:
    """Rewrite a day's part-0.parquet with ``edit`` applied to its rows (a frame), as another tool would."""
    path = day_file(store, day)
    frame = pq.read_table(path, filesystem=store.filesystem).to_pandas()
    table = pa.Table.from_pandas(edit(frame), schema=FILE_SCHEMA, preserve_index=False)
    with store.filesystem.open_output_stream(path) as stream:
        pq.write_table(table, stream)


def plant_job(frame: pd.DataFrame) -> pd.DataFrame:
    """A job the warehouse never held, added to a day's rows."""
    planted = frame.iloc[[0]].assign(id="planted-by-hand")
    return pd.concat([frame, planted], ignore_index=True)


def later_state(frame: pd.DataFrame) -> pd.DataFrame:
    """The first job made Failed, at a sighting a day later than any: a state the warehouse never had, which the
    latest-state merge would keep."""
    frame = frame.copy()
    frame.loc[0, "status"] = "Failed"
    frame.loc[0, "last_seen_at"] = frame["last_seen_at"].max() + timedelta(days=1)
    return frame


def files_below(store: ParquetStore, folder: str = "") -> dict[str, bytes]:
    """Every file below the store's root (or a folder of it), by path relative to the root, with its bytes."""
    base = str(store.root).removeprefix("s3://").rstrip("/")
    found = store.filesystem.get_file_info(pafs.FileSelector(f"{base}/{folder}".rstrip("/"), recursive=True,
                                                             allow_not_found=True))
    return {info.path[len(base) + 1:]: read_bytes(store, info.path) for info in found
            if info.type == pafs.FileType.File}


def dataset_as_pandas_reads_it(store: ParquetStore) -> pd.DataFrame:
    """The whole dataset through pandas.read_parquet, as analysts read it, sorted by key."""
    path = str(store.dataset_path).removeprefix("s3://")
    frame = pd.read_parquet(path, schema=ARROW_SCHEMA, partitioning="hive", filesystem=store.filesystem)
    return frame[list(COLUMN_NAMES)].sort_values(["project_id", "id"], ignore_index=True)


def warehouse_rows(warehouse: Warehouse, days: Sequence[date]) -> pd.DataFrame:
    """The warehouse's rows of ``days`` in the same pandas types, sorted by key."""
    frame = warehouse.read_days_table(days).to_pandas()
    return frame[list(COLUMN_NAMES)].sort_values(["project_id", "id"], ignore_index=True)


def assert_dataset_equals_warehouse(store: ParquetStore, warehouse: Warehouse, days: Sequence[date]) -> None:
    pd.testing.assert_frame_equal(dataset_as_pandas_reads_it(store), warehouse_rows(warehouse, days))
