"""Parquet snapshots of ``dds_jobs``: one file per UTC day of created_at, holding the latest state of each job.

Layout (hive-partitioned, so pyarrow, pandas and DuckDB read the whole set in one call)::

    {root}/dds_jobs/created_date=YYYY-MM-DD/part-0.parquet

The root is a local folder or S3-compatible object storage (``s3://bucket/prefix``, see
:mod:`pipeline.snapshots.s3`). ``created_date`` lives in the folder name only. A day is rewritten whole, merged with
what it holds, so a reader or a crash never sees half a day or a day twice:

- on a local disk it is written to a temporary file whose name starts with "." (readers skip it) and moved into
  place with one rename; writers of the same day queue on a lock file in its folder;
- on object storage it is serialized in memory and sent as one object in one request, which the server stores
  whole or not at all. Object storage has no locks: two writers of the same day at once may lose one's merge,
  so they must be serialized by their caller (the Dagster pool ``dds_api``, see docs/deployment.md).

A day is read as every file of its folder that the dataset's readers see (pipeline/snapshots/files.py). A file
that is not readable as dds_jobs rows makes plain reads and merges refuse the day (UnreadableDayError naming it);
healing (pipeline/snapshots/heal.py) rewrites such a day from the warehouse. Files a heal takes out of a day
are first copied to ``{root}/_quarantine/dds_jobs/created_date=YYYY-MM-DD/{UTC time}-{name}``, where no reader of
the dataset looks.
"""

import errno
import fcntl
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.records.precedence import latest_state_per_key
from pipeline.records.schema import (
    ARROW_SCHEMA,
    COLUMN_NAMES,
    NOT_NULL_COLUMNS,
    PARTITION_COLUMN,
    TABLE_NAME,
    arrow_to_frame,
    as_days,
    conform,
    empty_frame,
    frame_to_arrow,
)
from pipeline.snapshots.files import (
    DAY_FILE,
    QUARANTINE,
    DatasetFiles,
    DayFiles,
    UnreadableDayError,
    dataset_files,
    quarantine_path,
    read_day,
    visible_files,
)
from pipeline.snapshots.errors import SnapshotWriteError
from pipeline.snapshots.s3 import S3Location, S3Options, check_parquet_root, is_s3_uri

__all__ = ["DAY_FILE", "DayFiles", "ParquetStore", "SnapshotWriteError", "UnreadableDayError", "check_parquet_root"]

_TEMP_PREFIX, _TEMP_SUFFIX = ".part-0.", ".tmp"
# Stored rows read back and written to Parquet at a time (whole days): bounds the memory of a long backfill.
ROWS_AT_ONCE = 20_000
_LOCK_FILE = ".lock"
# Files written, or folders flushed, at once (a month of days, and a bound for longer backfills).
_FILES_AT_ONCE = 32
_FILE_ORDER = (PARTITION_COLUMN, "created_at", "project_id", "id")
FILE_SCHEMA = ARROW_SCHEMA.remove(ARROW_SCHEMA.get_field_index(PARTITION_COLUMN))
_PARTITIONING = ds.partitioning(pa.schema([ARROW_SCHEMA.field(PARTITION_COLUMN)]), flavor="hive")
_DAY_IN_PATH = re.compile(rf"{PARTITION_COLUMN}=(\d{{4}}-\d{{2}}-\d{{2}})")


class ParquetStore:
    """The Parquet snapshots under ``root`` (folder ``{root}/dds_jobs``). Rows are never deleted (a heal moves
    what it takes out of a day to the quarantine).

    ``root`` is a local folder (``root``, ``day_path`` are then ``Path``s) or ``s3://bucket/prefix`` (they are
    then URI strings), reached with ``s3`` (None: the AWS SDK's defaults). A day is read as every visible
    file of its folder, as the other readers see it. The store writes part-0.parquet only; any other file found in a
    day it writes is merged into part-0 and then removed.
    """

    def __init__(self, root: str | Path, s3: S3Options | None = None, *, setting: str | None = None) -> None:
        """``setting``: the variable that set ``root`` (DDS_PARQUET_ROOT, or DDS_DATA_DIR for the default), named by
        a SnapshotWriteError."""
        self._setting = setting
        if not isinstance(root, (str, Path)) or not str(root).strip():
            raise ValueError(f"Parquet root must be a non-empty path or s3:// URI, got {root!r}")
        self.root: Path | str
        self.filesystem: pafs.FileSystem
        self._writes: _LocalWrites | _ObjectWrites
        if is_s3_uri(root):
            location = S3Location.parse(str(root))
            self.root, self._base = location.uri, location.path
            self.filesystem = (s3 or S3Options()).filesystem()
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

    @property
    def quarantine_path(self) -> Path | str:
        """The folder where heals and repairs keep the files they take out of the dataset."""
        return self._shown(f"{self._base}/{QUARANTINE}")

    def day_path(self, day: date) -> Path | str:
        """The folder of one UTC day."""
        return self._shown(self._day_dir(day))

    def write_days(self, rows: pd.DataFrame | pa.Table) -> dict[date, int]:
        """Merge ``rows`` (a frame of dds_jobs rows, or an Arrow table of ``ARROW_SCHEMA``) into the days they cover
        (only those days are read); rows each day then holds. UnreadableDayError, before any write, when one of the
        days holds a file that does not read."""
        new = conform(rows) if isinstance(rows, pd.DataFrame) else _checked_table(rows)
        days = as_days(pa.array(new[PARTITION_COLUMN]).unique().to_pylist())
        with self.claim(days):
            stored = [table for day in days if (table := self.read_day_files(day).readable_or_raise()).num_rows]
            table = merged_with_stored(stored, new)
            written = self.replace(by_day_file(table, days))
        return {day: written[day] for day in days}

    def read_days(self, days: Iterable[date]) -> pd.DataFrame:
        """The jobs of ``days`` (days without a file give no rows), columns and dtypes as in normalize_jobs."""
        return arrow_to_frame(self.read_days_table(days))

    def read_days_table(self, days: Iterable[date], columns: Sequence[str] = COLUMN_NAMES) -> pa.Table:
        """The jobs of ``days`` as an Arrow table of ``ARROW_SCHEMA``'s types; only ``columns`` are read from the
        files (in the schema's order). UnreadableDayError names a file that does not read."""
        tables = [self.read_day_files(day, columns).readable_or_raise() for day in as_days(days)]
        return pa.concat_tables(tables) if tables else _schema_of(columns).empty_table()

    def read_all(self) -> pd.DataFrame:
        """Every day of the snapshots, read as one hive-partitioned dataset."""
        if self.filesystem.get_file_info(self._dataset_dir).type != pafs.FileType.Directory:
            return empty_frame()
        dataset = ds.dataset(self._dataset_dir, schema=ARROW_SCHEMA, format="parquet",
                             partitioning=_PARTITIONING, filesystem=self.filesystem)
        return arrow_to_frame(dataset.to_table())

    def read_day_files(
        self, day: date, columns: Sequence[str] = COLUMN_NAMES, files: Sequence[str] | None = None
    ) -> DayFiles:
        """One day's files and the rows of those that read (``columns`` of them), each unreadable file reported with
        its error instead of raised. A failure to reach the storage is raised. ``files``: the day's files as a
        listing of the dataset found them (saves listing the folder again)."""
        schema = _schema_of(columns)
        return read_day(self.filesystem, day, self._day_files(self._day_dir(day)) if files is None else files, schema)

    def has_files(self, day: date) -> bool:
        """Whether the day's folder holds a file the dataset's readers read."""
        return bool(self._day_files(self._day_dir(day)))

    def dataset_files(self) -> DatasetFiles:
        """Every file of the dataset that readers read: by day, and the strays outside any day folder."""
        return dataset_files(self.filesystem, self._dataset_dir)

    @contextmanager
    def claim(self, days: Iterable[date]) -> Iterator[None]:
        """The days held against other writers (on a local disk; see the module doc for object storage) while the
        block reads and replaces them."""
        with ExitStack() as claims:
            for day in as_days(days):  # in day order, so two writers never wait on each other crosswise
                with self._writing([day]):
                    claims.enter_context(self._writes.claim(self._day_dir(day)))
            yield

    def replace(self, days: Mapping[date, pa.Table], remove: Iterable[str] = ()) -> dict[date, int]:
        """Make each day of ``days`` hold exactly its table (rows of ``FILE_SCHEMA``) as its part-0.parquet, written as
        write_days writes (all or nothing per day, the days renamed in at once), then remove its other files and the
        files ``remove`` names (of any day); rows written per day. Call it inside ``claim`` of the days it touches."""
        files = {f"{self._day_dir(day)}/{DAY_FILE}": table for day, table in days.items()}
        replaced = [path for day in days for path in self._day_files(self._day_dir(day))]
        with self._writing(list(days)):
            self._writes.replace_all(files)
            removed = [path for path in dict.fromkeys([*replaced, *remove]) if path not in files]
            for path in removed:
                self.filesystem.delete_file(path)
            self._writes.persist(sorted({path.rpartition("/")[0] for path in [*files, *removed]}))
        return {day: table.num_rows for day, table in days.items()}

    def copy_to_quarantine(self, paths: Sequence[str]) -> list[Path | str]:
        """Copy files of the dataset to the quarantine, where no reader of the dataset looks (the copies of one call
        share a UTC time stamp); where each copy is."""
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        copies = []
        for path in paths:
            target = quarantine_path(self._base, path, stamp)
            with self._writing([]):
                self._writes.make_folder(target.rpartition("/")[0])
                self.filesystem.copy_file(path, target)
            copies.append(self._shown(target))
        return copies

    @contextmanager
    def _writing(self, days: Sequence[date]) -> Iterator[None]:
        """A failure of the storage while the block writes ``days`` raised as SnapshotWriteError, in one line."""
        try:
            yield
        except SnapshotWriteError:
            raise
        except OSError as error:
            raise SnapshotWriteError(self._write_error_line(error, days)) from error

    def _write_error_line(self, error: OSError, days: Sequence[date]) -> str:
        """``Parquet day D: cannot write PATH: REASON (the Parquet root R, set by VARIABLE)``."""
        path = error.filename if isinstance(error.filename, str) else None
        named = _DAY_IN_PATH.search(path or "")
        day = named[1] if named else ", ".join(day.isoformat() for day in days)
        subject = f"Parquet day {day}" if day else "the Parquet quarantine"
        shown = path or (self._shown(self._day_dir(days[0])) if len(days) == 1 else self.root)
        lines = str(error).strip().splitlines()
        reason = error.strerror or (lines[0] if lines else type(error).__name__)
        blame = f", set by {self._setting}" if self._setting else ""
        return f"{subject}: cannot write {shown}: {reason} (the Parquet root {self.root}{blame})"

    @property
    def _dataset_dir(self) -> str:
        return f"{self._base}/{TABLE_NAME}"

    def _day_dir(self, day: date) -> str:
        return f"{self._dataset_dir}/{PARTITION_COLUMN}={as_days([day])[0].isoformat()}"

    def _shown(self, path: str) -> Path | str:
        """A path of the filesystem as users name it: a Path locally, an s3:// URI on object storage."""
        return f"s3://{path}" if isinstance(self._writes, _ObjectWrites) else Path(path)

    def _day_files(self, folder: str) -> list[str]:
        return visible_files(self.filesystem, folder)


def merged_with_stored(stored: Sequence[pa.Table], new: pd.DataFrame | pa.Table) -> pa.Table:
    """``new`` merged with the ``stored`` rows of its days by the latest-state rule, as a table of ``ARROW_SCHEMA``."""
    if stored:
        # Stored rows first: on a tie the row being written is the newer one.
        frames = [arrow_to_frame(pa.concat_tables(stored)), new if isinstance(new, pd.DataFrame)
                  else arrow_to_frame(new)]
        new = latest_state_per_key(pd.concat(frames, ignore_index=True))
    return new if isinstance(new, pa.Table) else frame_to_arrow(new)


def by_day_file(table: pa.Table, days: Sequence[date]) -> dict[date, pa.Table]:
    """The rows of ``table`` (of ``ARROW_SCHEMA``, of ``days`` only) as each day's file holds them: in file order,
    without created_date (the folder's name)."""
    table = table.sort_by([(name, "ascending") for name in _FILE_ORDER])
    # Sorted by day first: each day's rows are one slice of the table.
    bounds = np.searchsorted(table[PARTITION_COLUMN].to_numpy(), np.array(days, dtype="datetime64[D]"), side="right")
    return {day: table.slice(start, end - start).drop_columns([PARTITION_COLUMN])
            for day, start, end in zip(days, np.r_[0, bounds[:-1]], bounds)}


def _schema_of(columns: Sequence[str]) -> pa.Schema:
    unknown = [name for name in columns if name not in COLUMN_NAMES]
    if unknown or not columns:
        raise ValueError(f"columns must be some of {list(COLUMN_NAMES)}, got {list(columns)!r}")
    return pa.schema([field for field in ARROW_SCHEMA if field.name in columns])


class _LocalWrites:
    """A local disk: writers of a day queue on a lock file; a day is written beside its file and renamed over it."""

    def claim(self, folder: str) -> AbstractContextManager[None]:
        self.make_folder(folder)
        return _locked_and_cleaned(Path(folder))

    def make_folder(self, folder: str) -> None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            # mkdir's own word for a file where the folder goes ("File exists") reads as if the folder were there.
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), folder) from None

    def replace_all(self, files: Mapping[str, pa.Table]) -> None:
        """Write each table beside its path under a hidden name, flush all the files to disk at once, then rename
        each over its path.

        Every file's data reaches the disk before any rename: after a power cut each name holds its old file or
        its new one whole, and a failure while writing any of them leaves every day as it was. The renames are
        made durable by ``persist``, once per folder and call. A month of days used to wait for 30 flushes in
        turn; flushed at once, the file system commits them together. (Encoding the files at once too saved 15 ms
        a month on 2 cores, and cost 50 MB of peak memory in the allocator's per-thread arenas: not worth it.)
        """
        temporaries = {path: Path(path).with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex}{_TEMP_SUFFIX}") for path in files}
        try:
            for path, temporary in temporaries.items():
                pq.write_table(files[path], temporary)
            _all_at_once(_fsync, temporaries.values())
            for path, temporary in temporaries.items():
                os.replace(temporary, path)
        finally:
            for temporary in temporaries.values():
                temporary.unlink(missing_ok=True)

    def persist(self, folders: Sequence[str]) -> None:
        """Make the renames and removals made in ``folders`` durable: one flush of each folder, at the end of a
        write rather than after each file, all at once (the file system then commits them together)."""
        _all_at_once(lambda folder: _fsync(Path(folder)), folders)


class _ObjectWrites:
    """Object storage: a day object is replaced by one request; there is no lock to take (see the module doc)."""

    def __init__(self, filesystem: pafs.FileSystem) -> None:
        self._filesystem = filesystem

    def claim(self, folder: str) -> AbstractContextManager[None]:
        return nullcontext()

    def make_folder(self, folder: str) -> None:
        """Nothing to do: object storage has no folders, only keys."""

    def persist(self, folders: Sequence[str]) -> None:
        """Nothing to do: an object is durable once its upload has returned."""

    def replace_all(self, files: Mapping[str, pa.Table]) -> None:
        """Serialize every table whole first (one at a time, as on a local disk), then send each as the object of
        its path, the uploads at once: a failure before or during an upload leaves that object as it was (the
        server commits an object only once it is complete)."""
        serialized = {path: _serialized(table) for path, table in files.items()}
        _all_at_once(lambda path: self._upload(path, serialized[path]), files)

    def _upload(self, path: str, data: pa.Buffer) -> None:
        with self._filesystem.open_output_stream(path) as upload:
            upload.write(data)


def _checked_table(table: pa.Table) -> pa.Table:
    """``table`` if it is a table of ``ARROW_SCHEMA`` with no null where the schema forbids one; else ValueError."""
    if not isinstance(table, pa.Table) or not table.schema.equals(ARROW_SCHEMA):
        shown = table.schema if isinstance(table, pa.Table) else type(table).__name__
        raise ValueError(f"expected a DataFrame of dds_jobs rows or an Arrow table of their schema, got {shown}")
    for name in NOT_NULL_COLUMNS:
        if table[name].null_count:
            raise ValueError(f"column {name!r} must not be null but is null in {table[name].null_count} row(s)")
    return table


T, R = TypeVar("T"), TypeVar("R")


def _all_at_once(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``work`` on every item, up to _FILES_AT_ONCE at a time in threads; the first failure is raised once all
    have ended, so that nothing is still writing when the caller cleans up."""
    items = list(items)
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), _FILES_AT_ONCE)) as pool:
        futures = [pool.submit(work, item) for item in items]
    return [future.result() for future in futures]


def _serialized(table: pa.Table) -> pa.Buffer:
    serialized = pa.BufferOutputStream()
    pq.write_table(table, serialized)
    return serialized.getvalue()


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
