"""Parquet snapshots of ``dds_jobs``: one file per UTC day of created_at, holding the latest state of each job.

Layout (hive-partitioned, so pyarrow, pandas and DuckDB read the whole set in one call)::

    {root}/dds_jobs/created_date=YYYY-MM-DD/part-0.parquet

``created_date`` lives in the folder name only. A day is rewritten whole: merged with what it holds, written to a
temporary file whose name starts with "." (readers skip it) and moved into place with one rename, so a reader or
a crash never sees half a day or a day twice. Writers of the same day queue on a lock file in its folder.
"""

import fcntl
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.storage.precedence import latest_state_per_key
from pipeline.storage.schema import (
    ARROW_SCHEMA,
    PARTITION_COLUMN,
    TABLE_NAME,
    arrow_to_frame,
    as_days,
    conform,
    empty_frame,
    frame_to_arrow,
)

DAY_FILE = "part-0.parquet"
_TEMP_PREFIX, _TEMP_SUFFIX = ".part-0.", ".tmp"
_LOCK_FILE = ".lock"
_FILE_ORDER = (PARTITION_COLUMN, "created_at", "project_id", "id")
FILE_SCHEMA = ARROW_SCHEMA.remove(ARROW_SCHEMA.get_field_index(PARTITION_COLUMN))
_PARTITIONING = ds.partitioning(pa.schema([ARROW_SCHEMA.field(PARTITION_COLUMN)]), flavor="hive")


class ParquetStore:
    """The Parquet snapshots under ``root`` (folder ``{root}/dds_jobs``). Rows are never deleted.

    A day is read as every visible Parquet file of its folder, as the other readers see it. The store writes
    part-0.parquet only; any other file found in a day it writes is merged into part-0 and then removed.
    """

    def __init__(self, root: str | Path) -> None:
        if not isinstance(root, (str, Path)) or not str(root).strip():
            raise ValueError(f"Parquet root must be a non-empty path, got {root!r}")
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.root)!r})"

    @property
    def dataset_path(self) -> Path:
        """The folder to hand to pyarrow.dataset, pandas.read_parquet or DuckDB."""
        return self.root / TABLE_NAME

    def day_path(self, day: date) -> Path:
        """The folder of one UTC day."""
        return self.dataset_path / f"{PARTITION_COLUMN}={as_days([day])[0].isoformat()}"

    def write_days(self, frame: pd.DataFrame) -> dict[date, int]:
        """Merge ``frame`` into the days it covers (only those days are read); rows each day then holds."""
        frame = conform(frame)
        days = as_days(pa.array(frame[PARTITION_COLUMN]).unique().to_pylist())
        folders = [self.day_path(day) for day in days]
        with ExitStack() as locks:
            for folder in folders:  # in day order, so two writers never wait on each other crosswise
                folder.mkdir(parents=True, exist_ok=True)
                locks.enter_context(_locked(folder))
                _remove_leftovers(folder)
            stored = [table for table in map(self._read_day, days) if table is not None]
            if stored:
                # Stored rows first: on a tie the row being written is the newer one.
                stored_frame = arrow_to_frame(pa.concat_tables(stored))
                frame = latest_state_per_key(pd.concat([stored_frame, frame], ignore_index=True))
            table = frame_to_arrow(frame).sort_by([(name, "ascending") for name in _FILE_ORDER])
            written = {}
            for day, folder in zip(days, folders):
                merged_files = _day_files(folder)
                rows = table.filter(pc.equal(table[PARTITION_COLUMN], pa.scalar(day, pa.date32())))
                _replace_atomically(folder / DAY_FILE, rows.drop_columns([PARTITION_COLUMN]))
                written[day] = rows.num_rows
                for path in merged_files:
                    if path.name != DAY_FILE:
                        path.unlink()
        return written

    def read_days(self, days: Iterable[date]) -> pd.DataFrame:
        """The jobs of ``days`` (days without a file give no rows), columns and dtypes as in normalize_jobs."""
        tables = [self._read_day(day) for day in as_days(days)]
        tables = [table for table in tables if table is not None]
        return arrow_to_frame(pa.concat_tables(tables)) if tables else empty_frame()

    def read_all(self) -> pd.DataFrame:
        """Every day of the snapshots, read as one hive-partitioned dataset."""
        if not self.dataset_path.is_dir():
            return empty_frame()
        dataset = ds.dataset(self.dataset_path, schema=ARROW_SCHEMA, format="parquet", partitioning=_PARTITIONING)
        return arrow_to_frame(dataset.to_table())

    def _read_day(self, day: date) -> pa.Table | None:
        files = _day_files(self.day_path(day))
        if not files:
            return None
        table = pa.concat_tables(pq.read_table(path, schema=FILE_SCHEMA) for path in files)
        days = pa.repeat(pa.scalar(day, ARROW_SCHEMA.field(PARTITION_COLUMN).type), table.num_rows)
        return table.add_column(ARROW_SCHEMA.get_field_index(PARTITION_COLUMN), PARTITION_COLUMN, days)


def _day_files(folder: Path) -> list[Path]:
    """The Parquet files of a day folder that readers see (pyarrow and pandas skip names starting "." or "_")."""
    return sorted(path for path in folder.glob("*.parquet") if not path.name.startswith((".", "_")))


def _replace_atomically(path: Path, table: pa.Table) -> None:
    """Write ``table`` beside ``path`` under a hidden name, flush it to disk, then rename it over ``path``."""
    temporary = path.with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex}{_TEMP_SUFFIX}")
    try:
        pq.write_table(table, temporary)
        _fsync(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_leftovers(folder: Path) -> None:
    """Temporary files of writes that crashed (safe to remove: the caller holds the day's lock)."""
    for leftover in folder.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / _LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
