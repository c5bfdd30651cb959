"""The files of the Parquet snapshots as the dataset's readers see them, and reading one as dds_jobs rows.

pyarrow, pandas and DuckDB read ``{root}/dds_jobs`` as one dataset: pyarrow and pandas read *every* file below it
whose path has no part starting with "." or "_", as Parquet, whatever its name. So a day's *files* are all such
files of its folder, and a file there that is not a dds_jobs Parquet file (truncated, garbage, another table's)
breaks every reader of the whole dataset: it is *unreadable*. A visible file of the dataset folder outside any
``created_date=YYYY-MM-DD`` folder is a *stray* of the dataset (readers read it too, with no day).
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.records.schema import ARROW_SCHEMA, NOT_NULL_COLUMNS, PARTITION_COLUMN

DAY_FILE = "part-0.parquet"
# The folder below the store's root where files taken out of the dataset are kept (pipeline/snapshots/heal.py).
QUARANTINE = "_quarantine"
_HIDDEN = (".", "_")
_DAY_FOLDER = re.compile(rf"^{PARTITION_COLUMN}=(\d{{4}}-\d{{2}}-\d{{2}})$")
# What parsing a file's bytes raises when they are not a Parquet file of dds_jobs rows. The bytes are in memory by
# then, so such an error is the file's content, never the network's or the disk's (those are raised as they are).
_CONTENT_ERRORS = (pa.ArrowException, OSError, ValueError)
_ERROR_LENGTH = 200


class UnreadableDayError(ValueError):
    """A day's folder holds a file that cannot be read as dds_jobs rows; the message names the file."""


@dataclass(frozen=True)
class DayFiles:
    """One day's folder as the dataset's readers see it: its files, the rows of those that read, and why each of the
    others does not."""

    day: date
    files: tuple[str, ...]
    # Every row of the readable files, none dropped or merged, in the columns asked (created_date included if asked).
    table: pa.Table
    unreadable: Mapping[str, str] = field(default_factory=dict)

    @property
    def stray(self) -> list[str]:
        """The files besides the day's own ``part-0.parquet`` (another tool's, a copy made by hand...)."""
        return [path for path in self.files if name_in_day(path) != DAY_FILE]

    def why_unreadable(self) -> str:
        """One line naming each unreadable file (by its path in the day's folder) and what is wrong with it."""
        return "; ".join(f"{name_in_day(path)} ({error})" for path, error in self.unreadable.items())

    def readable_or_raise(self) -> pa.Table:
        """The rows, or UnreadableDayError naming the files that do not read."""
        if self.unreadable:
            raise UnreadableDayError(
                f"Parquet day {self.day.isoformat()} holds unreadable file(s): {self.why_unreadable()}; "
                "rewrite it from the warehouse with `dds-tasks verify-parquet --repair`"
            )
        return self.table


def name_in_day(path: str) -> str:
    """A file's path below its day folder (``part-0.parquet``, ``sub/x.parquet``)."""
    _, _, below = path.partition(f"{PARTITION_COLUMN}=")
    return below.partition("/")[2] or path.rpartition("/")[2]


def visible_files(filesystem: pafs.FileSystem, folder: str) -> list[str]:
    """The files below ``folder`` (at any depth) that the dataset's readers read, sorted."""
    found = filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True, recursive=True))
    return sorted(info.path for info in found
                  if info.type == pafs.FileType.File and _visible(info.path[len(folder) + 1:]))


@dataclass(frozen=True)
class DatasetFiles:
    """Every file readers read below the dataset folder: per day (folders ``created_date=YYYY-MM-DD``), and the
    strays outside any day folder."""

    days: Mapping[date, list[str]]
    strays: list[str]


def dataset_files(filesystem: pafs.FileSystem, dataset_dir: str) -> DatasetFiles:
    """One listing of the dataset folder (one request per 1,000 objects on object storage), classified."""
    days: dict[date, list[str]] = {}
    strays: list[str] = []
    for path in visible_files(filesystem, dataset_dir):
        folder, _, rest = path[len(dataset_dir) + 1:].partition("/")
        day = _day_of_folder(folder) if rest else None
        if day is None:
            strays.append(path)
        else:
            days.setdefault(day, []).append(path)
    return DatasetFiles(dict(sorted(days.items())), strays)


def read_day(filesystem: pafs.FileSystem, day: date, files: Sequence[str], schema: pa.Schema) -> DayFiles:
    """The rows of a day's ``files`` in the columns of ``schema`` (a part of ARROW_SCHEMA; created_date comes from
    the day), each file that is not readable reported rather than raised."""
    tables, unreadable = [], {}
    in_files = pa.schema([f for f in schema if f.name != PARTITION_COLUMN])
    for path in files:
        try:
            tables.append(_read_file(filesystem, path, in_files))
        except _UnreadableFile as exc:
            unreadable[path] = str(exc)
    table = pa.concat_tables(tables) if tables else in_files.empty_table()
    if PARTITION_COLUMN in schema.names:
        days = pa.repeat(pa.scalar(day, ARROW_SCHEMA.field(PARTITION_COLUMN).type), table.num_rows)
        table = table.add_column(schema.get_field_index(PARTITION_COLUMN), PARTITION_COLUMN, days)
    return DayFiles(day, tuple(files), table, unreadable)


def quarantine_path(base: str, path: str, stamp: str) -> str:
    """Where a file taken out of the dataset below ``base`` (the store's root) is kept: the same path below
    ``{base}/_quarantine``, its name prefixed with ``stamp`` (so that files taken out at different times all stay)."""
    folder, _, name = path[len(base) + 1:].rpartition("/")
    return f"{base}/{QUARANTINE}/{folder}/{stamp}-{name}"


class _UnreadableFile(Exception):
    pass


def _read_file(filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> pa.Table:
    """The columns of ``schema`` in one file; _UnreadableFile when its content is not such rows."""
    with filesystem.open_input_stream(path) as stream:
        data = stream.read_buffer()  # a failure to read (the network, the disk) is raised as it is
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        lacking = [name for name in schema.names if name not in parquet.schema_arrow.names]
        if lacking:
            raise _UnreadableFile(f"not a dds_jobs file: no column {', '.join(lacking)}")
        table = parquet.read(columns=schema.names).select(schema.names).cast(schema)
    except _CONTENT_ERRORS as exc:
        raise _UnreadableFile(_one_line(exc) if data.size else "empty file") from None
    for name in NOT_NULL_COLUMNS:
        if name in table.column_names and table[name].null_count:
            raise _UnreadableFile(f"not a dds_jobs file: {name} is null in {table[name].null_count} row(s)")
    return table


def _visible(relative: str) -> bool:
    return not any(part.startswith(_HIDDEN) for part in relative.split("/"))


def _day_of_folder(name: str) -> date | None:
    match = _DAY_FOLDER.match(name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:  # created_date=2026-02-30
        return None


def _one_line(exc: BaseException) -> str:
    """The error's first sentence (pyarrow's go on with advice), within _ERROR_LENGTH characters."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
    return text if len(text) <= _ERROR_LENGTH else text[:_ERROR_LENGTH] + "..."
