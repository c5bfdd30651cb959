"""Parquet snapshots of ``dds_jobs``: one file per UTC day of created_at, holding the latest state of each job.

Layout (hive-partitioned, so pyarrow, pandas and DuckDB read the whole set in one call)::

    {root}/dds_jobs/created_date=YYYY-MM-DD/part-0.parquet

The root is a local folder or S3-compatible object storage (``s3://bucket/prefix``, see
:mod:`pipeline.storage.s3`). ``created_date`` lives in the folder name only. A day is rewritten whole, merged with
what it holds, so a reader or a crash never sees half a day or a day twice:

- on a local disk it is written to a temporary file whose name starts with "." (readers skip it) and moved into
  place with one rename; writers of the same day queue on a lock file in its folder;
- on object storage it is serialized in memory and sent as one object in one request, which the server stores
  whole or not at all. Object storage has no locks: two writers of the same day at once may lose one's merge,
  so they must be serialized by their caller (the Dagster pool ``dds_api``, see docs/deployment.md).
"""

import fcntl
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.storage.precedence import latest_state_per_key
from pipeline.storage.s3 import S3Location, S3Options, is_s3_uri
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


def check_parquet_root(root: str, env: Mapping[str, str] | None = None) -> None:
    """ValueError naming what is wrong unless ``root`` is a local folder or an s3:// URI whose S3 settings
    (from ``env``, default the process environment) are usable. No request is made, nothing is written."""
    if is_s3_uri(root):
        S3Location.parse(root)
        S3Options.from_env(env)
    elif "://" in root:
        # Only the scheme is shown: the rest of a URI may hold credentials.
        raise ValueError(
            f"DDS_PARQUET_ROOT names a {root.split('://', 1)[0]}:// URI: only local folders and "
            "s3://bucket/prefix (S3, OBS, MinIO) are supported"
        )


class ParquetStore:
    """The Parquet snapshots under ``root`` (folder ``{root}/dds_jobs``). Rows are never deleted.

    ``root`` is a local folder (``root``, ``day_path`` are then ``Path``s) or ``s3://bucket/prefix`` (they are
    then URI strings); ``s3`` overrides the S3 options the environment gives. A day is read as every visible
    Parquet file of its folder, as the other readers see it. The store writes part-0.parquet only; any other
    file found in a day it writes is merged into part-0 and then removed.
    """

    def __init__(self, root: str | Path, s3: S3Options | None = None) -> None:
        if not isinstance(root, (str, Path)) or not str(root).strip():
            raise ValueError(f"Parquet root must be a non-empty path or s3:// URI, got {root!r}")
        self.root: Path | str
        self.filesystem: pafs.FileSystem
        self._writes: _LocalWrites | _ObjectWrites
        if is_s3_uri(root):
            location = S3Location.parse(str(root))
            self.root, self._base = location.uri, location.path
            self.filesystem = (s3 or S3Options.from_env()).filesystem()
            self._writes = _ObjectWrites(self.filesystem)
        else:
            check_parquet_root(str(root))  # refuses the URI of any other storage
            self.root = Path(root)
            self._base = self.root.absolute().as_posix()
            self.filesystem = pafs.LocalFileSystem()
            self._writes = _LocalWrites()

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.root)!r})"

    @property
    def dataset_path(self) -> Path | str:
        """The folder to hand to pyarrow.dataset, pandas.read_parquet or DuckDB."""
        return self._shown(self._dataset_dir)

    def day_path(self, day: date) -> Path | str:
        """The folder of one UTC day."""
        return self._shown(self._day_dir(day))

    def write_days(self, frame: pd.DataFrame) -> dict[date, int]:
        """Merge ``frame`` into the days it covers (only those days are read); rows each day then holds."""
        frame = conform(frame)
        days = as_days(pa.array(frame[PARTITION_COLUMN]).unique().to_pylist())
        folders = [self._day_dir(day) for day in days]
        with ExitStack() as claims:
            for folder in folders:  # in day order, so two writers never wait on each other crosswise
                claims.enter_context(self._writes.claim(folder))
            stored = [table for table in map(self._read_day, days) if table is not None]
            if stored:
                # Stored rows first: on a tie the row being written is the newer one.
                stored_frame = arrow_to_frame(pa.concat_tables(stored))
                frame = latest_state_per_key(pd.concat([stored_frame, frame], ignore_index=True))
            table = frame_to_arrow(frame).sort_by([(name, "ascending") for name in _FILE_ORDER])
            written = {}
            for day, folder in zip(days, folders):
                merged_files = self._day_files(folder)
                rows = table.filter(pc.equal(table[PARTITION_COLUMN], pa.scalar(day, pa.date32())))
                day_file = f"{folder}/{DAY_FILE}"
                self._writes.replace(day_file, rows.drop_columns([PARTITION_COLUMN]))
                written[day] = rows.num_rows
                for path in merged_files:
                    if path.rsplit("/", 1)[-1] != DAY_FILE:
                        self.filesystem.delete_file(path)
        return written

    def read_days(self, days: Iterable[date]) -> pd.DataFrame:
        """The jobs of ``days`` (days without a file give no rows), columns and dtypes as in normalize_jobs."""
        tables = [self._read_day(day) for day in as_days(days)]
        tables = [table for table in tables if table is not None]
        return arrow_to_frame(pa.concat_tables(tables)) if tables else empty_frame()

    def read_all(self) -> pd.DataFrame:
        """Every day of the snapshots, read as one hive-partitioned dataset."""
        if self.filesystem.get_file_info(self._dataset_dir).type != pafs.FileType.Directory:
            return empty_frame()
        dataset = ds.dataset(self._dataset_dir, schema=ARROW_SCHEMA, format="parquet",
                             partitioning=_PARTITIONING, filesystem=self.filesystem)
        return arrow_to_frame(dataset.to_table())

    @property
    def _dataset_dir(self) -> str:
        return f"{self._base}/{TABLE_NAME}"

    def _day_dir(self, day: date) -> str:
        return f"{self._dataset_dir}/{PARTITION_COLUMN}={as_days([day])[0].isoformat()}"

    def _shown(self, path: str) -> Path | str:
        """A path of the filesystem as users name it: a Path locally, an s3:// URI on object storage."""
        return f"s3://{path}" if isinstance(self._writes, _ObjectWrites) else Path(path)

    def _day_files(self, folder: str) -> list[str]:
        """The Parquet files of a day folder that readers see (pyarrow and pandas skip names starting "." or "_")."""
        found = self.filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        return sorted(
            info.path for info in found
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
            and not info.base_name.startswith((".", "_"))
        )

    def _read_day(self, day: date) -> pa.Table | None:
        files = self._day_files(self._day_dir(day))
        if not files:
            return None
        table = pa.concat_tables(
            pq.read_table(path, schema=FILE_SCHEMA, filesystem=self.filesystem) for path in files
        )
        days = pa.repeat(pa.scalar(day, ARROW_SCHEMA.field(PARTITION_COLUMN).type), table.num_rows)
        return table.add_column(ARROW_SCHEMA.get_field_index(PARTITION_COLUMN), PARTITION_COLUMN, days)


class _LocalWrites:
    """A local disk: writers of a day queue on a lock file; a day is written beside its file and renamed over it."""

    def claim(self, folder: str) -> AbstractContextManager[None]:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return _locked_and_cleaned(Path(folder))

    def replace(self, path: str, table: pa.Table) -> None:
        """Write ``table`` beside ``path`` under a hidden name, flush it to disk, then rename it over ``path``."""
        target = Path(path)
        temporary = target.with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex}{_TEMP_SUFFIX}")
        try:
            pq.write_table(table, temporary)
            _fsync(temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync(target.parent)


class _ObjectWrites:
    """Object storage: a day object is replaced by one request; there is no lock to take (see the module doc)."""

    def __init__(self, filesystem: pafs.FileSystem) -> None:
        self._filesystem = filesystem

    def claim(self, folder: str) -> AbstractContextManager[None]:
        return nullcontext()

    def replace(self, path: str, table: pa.Table) -> None:
        """Serialize ``table`` whole first, then send it as the object ``path``: a failure before or during the
        upload leaves the previous object as it was (the server commits an object only once it is complete)."""
        serialized = pa.BufferOutputStream()
        pq.write_table(table, serialized)
        with self._filesystem.open_output_stream(path) as upload:
            upload.write(serialized.getvalue())


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def _locked_and_cleaned(folder: Path) -> Iterator[None]:
    """The day's lock, held; then the temporary files of writes that crashed are safe to remove."""
    with open(folder / _LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for leftover in folder.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
                leftover.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
