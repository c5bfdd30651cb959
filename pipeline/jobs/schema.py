"""The one column list of the ``dds_jobs`` table, and everything derived from it.

A row of ``dds_jobs`` is the latest known state of one DDS task-center job, keyed by (project_id, id).
The SQLAlchemy table, the pyarrow schema and the pandas dtypes below are all built from ``COLUMNS``, so the
warehouse, the Parquet snapshots and the normalized frames cannot drift apart.
"""

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, oracle

# A job in one of the API's final states is final: a later answer saying otherwise is stale (see precedence.py).
TERMINAL_STATUSES = ("Completed", "Failed")
TABLE_NAME = "dds_jobs"
KEY_COLUMNS = ("project_id", "id")
INDEXED_COLUMNS = ("created_date", "status", "instance_id")
PARTITION_COLUMN = "created_date"


class Kind(enum.Enum):
    """What a column holds; each kind maps to one SQL, one Arrow and one pandas type below."""

    TEXT = "text"
    FLOAT = "float"
    TIMESTAMP = "timestamp"
    DATE = "date"


@dataclass(frozen=True)
class Column:
    """One column of ``dds_jobs``; ``doc`` says what its value means (also stored as the SQL column comment)."""

    name: str
    kind: Kind
    nullable: bool
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("project_id", Kind.TEXT, False, "project the job was read from (key)"),
    Column("id", Kind.TEXT, False, "task id (key)"),
    Column("name", Kind.TEXT, True, "task name as sent, e.g. RestartInstance"),
    Column("instance_id", Kind.TEXT, True, "DB instance id as sent"),
    Column("instance_name", Kind.TEXT, True, "DB instance name as sent"),
    Column("status", Kind.TEXT, True, "Running, Completed, Failed, or any new value as sent"),
    Column("progress_pct", Kind.FLOAT, True, "'60%' gives 60.0; empty gives NULL"),
    Column("fail_reason", Kind.TEXT, True, "failure message; empty gives NULL"),
    Column("created_at", Kind.TIMESTAMP, False, "creation instant, UTC"),
    Column("ended_at", Kind.TIMESTAMP, True, "end instant, UTC; NULL while running"),
    Column("duration_seconds", Kind.FLOAT, True, "ended_at - created_at"),
    Column("created_date", Kind.DATE, False, "UTC day of created_at: the partition key"),
    Column("first_seen_at", Kind.TIMESTAMP, False, "first sync that saw the job, UTC"),
    Column("last_seen_at", Kind.TIMESTAMP, False, "latest sync that saw the job, UTC"),
    Column("region", Kind.TEXT, True, "region the job was read from, when known"),
    Column("raw_record", Kind.TEXT, True, "the JSON record as sent, kept only when anomalous or with unknown fields"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
NOT_NULL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if not c.nullable)

# The types' variants for other databases leave the SQLite and PostgreSQL DDL as it was. MySQL and MariaDB need
# them most: their TEXT holds only 64 KB and cannot be a key or indexed without a length, their default collation
# ignores case (two task ids differing in case would be one key), and DATETIME drops the microseconds.
# The dialect names of MySQL and MariaDB, which share one SQL flavour here.
MYSQL_FAMILY = ("mysql", "mariadb")
_MYSQL_TEXT = {"charset": "utf8mb4", "collation": "utf8mb4_bin"}
# Key and indexed text: unbounded where the database indexes it (SQLite, PostgreSQL), 255 characters elsewhere
# (the API's ids and statuses are far shorter; two such utf8mb4 columns fit InnoDB's 3072-byte key limit).
KEY_TEXT_LENGTH = 255
_KEY_TEXT = (
    sa.Unicode(KEY_TEXT_LENGTH)
    .with_variant(sa.Text(), "sqlite", "postgresql")
    .with_variant(mysql.VARCHAR(KEY_TEXT_LENGTH, **_MYSQL_TEXT), *MYSQL_FAMILY)
)
_SQL_TYPES: dict[Kind, sa.types.TypeEngine] = {
    Kind.TEXT: sa.UnicodeText().with_variant(sa.Text(), "sqlite", "postgresql")
    .with_variant(mysql.LONGTEXT(**_MYSQL_TEXT), *MYSQL_FAMILY),
    # Oracle counts a FLOAT's precision in bits, and refuses to guess: its IEEE double instead.
    Kind.FLOAT: sa.Float(precision=53).with_variant(oracle.BINARY_DOUBLE(), "oracle"),
    # timestamptz on PostgreSQL; SQLite, MySQL and MariaDB have no zone-aware type, so the warehouse stores UTC.
    Kind.TIMESTAMP: sa.DateTime(timezone=True)
    .with_variant(mysql.DATETIME(fsp=6), *MYSQL_FAMILY)
    .with_variant(oracle.TIMESTAMP(timezone=True), "oracle"),  # Oracle's DateTime is DATE: whole seconds
    Kind.DATE: sa.Date(),
}

_ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.FLOAT: pa.float64(),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    Kind.DATE: pa.date32(),
}
_PANDAS_DTYPES: dict[Kind, object] = {
    # Python strings (None for NULL): what the API's JSON gives and what DB drivers take, so neither normalizing
    # nor loading pays for a conversion.
    Kind.TEXT: np.dtype(object),
    Kind.FLOAT: np.dtype("float64"),
    Kind.TIMESTAMP: pd.DatetimeTZDtype("us", "UTC"),
    # pandas has no date dtype of its own; the Arrow date keeps it a date (not a midnight timestamp).
    Kind.DATE: pd.ArrowDtype(pa.date32()),
}

# What a text column may hold in a frame: Python strings, and None for NULL.
TEXT_TYPES = {str, type(None)}


def sql_type(kind: Kind, keyed: bool = False) -> sa.types.TypeEngine:
    """The warehouse's SQL type of a ``kind`` of value on every database; ``keyed`` text (part of a key or an
    index) gets the bounded variant."""
    return _KEY_TEXT if kind is Kind.TEXT and keyed else _SQL_TYPES[kind]


def _sql_type(column: Column) -> sa.types.TypeEngine:
    return sql_type(column.kind, keyed=column.name in KEY_COLUMNS or column.name in INDEXED_COLUMNS)


METADATA = sa.MetaData()
DDS_JOBS = sa.Table(
    TABLE_NAME,
    METADATA,
    *(
        sa.Column(c.name, _sql_type(c), nullable=c.nullable, primary_key=c.name in KEY_COLUMNS, comment=c.doc)
        for c in COLUMNS
    ),
    *(sa.Index(f"ix_{TABLE_NAME}_{name}", name) for name in INDEXED_COLUMNS),
    comment="One row per DDS task-center job (project_id, id): its latest known state.",
    # A re-sync updates every row it sees (last_seen_at moves). PostgreSQL keeps an update on its page, without
    # touching the indexes (a HOT update), only where the page has room for the new version: half of each page
    # left free gives every row of a page that room. At 70% a 30,000-row re-sync ran at 70,000 rows/s and the
    # table grew to 17 MB over two re-syncs; at 50% it runs at 108,000 rows/s and stays at 13 MB, as each re-sync
    # reuses the room the one before it left.
    postgresql_with={"fillfactor": 50},
)

ARROW_SCHEMA = pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind], nullable=c.nullable) for c in COLUMNS])
PANDAS_DTYPES: dict[str, object] = {c.name: _PANDAS_DTYPES[c.kind] for c in COLUMNS}


def arrow_to_frame(table: pa.Table, columns: Sequence[str] = COLUMN_NAMES) -> pd.DataFrame:
    """The ``columns`` (all by default) of a pyarrow table of ``dds_jobs`` columns as a frame, in that order, with
    the schema's pandas dtypes."""
    table = table.select(list(columns)).cast(pa.schema([ARROW_SCHEMA.field(name) for name in columns]))
    return pd.DataFrame({name: series_from_arrow(table.column(name)) for name in columns}, columns=list(columns))


def series_from_arrow(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    """One column of ``ARROW_SCHEMA`` types as a pandas Series of the matching dtype (nulls as None/NaN/NaT)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type == pa.string():
        return pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
    if values.type == pa.date32():
        return pd.Series(pd.arrays.ArrowExtensionArray(values))
    if values.type == pa.float64():
        return pd.Series(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_timestamp(values.type):
        naive_utc = pd.Series(values.to_numpy(zero_copy_only=False))
        return naive_utc.dt.tz_localize("UTC").astype(_PANDAS_DTYPES[Kind.TIMESTAMP])
    raise TypeError(f"no dds_jobs column has the Arrow type {values.type}")


def frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The ``dds_jobs`` columns of ``frame`` as a pyarrow table of ``ARROW_SCHEMA``; ValueError names a bad column."""
    check_columns(frame)
    check_not_null(frame)
    return pa.Table.from_arrays([_to_arrow(frame[f.name], f) for f in ARROW_SCHEMA], schema=ARROW_SCHEMA)


def _to_arrow(series: pd.Series, field: pa.Field) -> pa.Array:
    try:
        try:
            return pa.array(series, type=field.type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # e.g. ISO date strings or timestamps for created_date: Arrow casts what it cannot convert directly.
            return pa.array(series, from_pandas=True).cast(field.type)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ValueError(f"column {field.name!r} cannot be read as {field.type}: {_first_line(exc)}") from None


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly the ``dds_jobs`` columns, in order, with the schema's dtypes (timestamps in UTC);
    ValueError naming the first column that is missing, null where it may not be, or of the wrong type."""
    check_columns(frame)
    if _has_schema_types(frame):
        check_not_null(frame)
        return frame[list(COLUMN_NAMES)]
    return arrow_to_frame(frame_to_arrow(frame))


def _has_schema_types(frame: pd.DataFrame) -> bool:
    for column in COLUMNS:
        series = frame[column.name]
        if series.dtype != PANDAS_DTYPES[column.name]:
            return False
        if column.kind is Kind.TEXT and not set(map(type, series.to_numpy())) <= TEXT_TYPES:
            return False
    return True


def empty_frame() -> pd.DataFrame:
    """A frame of no jobs with the schema's columns and dtypes."""
    return arrow_to_frame(ARROW_SCHEMA.empty_table())


def check_columns(frame: object) -> None:
    """ValueError unless ``frame`` is a DataFrame with exactly the ``dds_jobs`` columns (any order)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of dds_jobs rows, got {type(frame).__name__}")
    missing = [name for name in COLUMN_NAMES if name not in frame.columns]
    extra = [str(name) for name in frame.columns if name not in COLUMN_NAMES]
    if missing or extra:
        raise ValueError(f"frame does not have the dds_jobs columns: missing {missing}, unexpected {extra}")
    if frame.columns.duplicated().any():
        raise ValueError(f"frame has duplicated columns: {sorted(set(frame.columns[frame.columns.duplicated()]))}")


def check_not_null(frame: pd.DataFrame) -> None:
    """ValueError naming the first NOT NULL column of ``dds_jobs`` that holds a null in ``frame``."""
    for name in NOT_NULL_COLUMNS:
        nulls = int(frame[name].isna().sum())
        if nulls:
            raise ValueError(f"column {name!r} must not be null but is null in {nulls} row(s)")


def as_days(days: Iterable[date]) -> list[date]:
    """Distinct partition days, sorted; ValueError for anything but dates (a datetime is not taken for its day)."""
    if isinstance(days, (str, date)):
        raise ValueError(f"days must be a list of dates, got a single {type(days).__name__}")
    if not isinstance(days, Iterable):
        raise ValueError(f"days must be a list of dates, got {type(days).__name__}")
    distinct = set()
    for day in days:
        if not isinstance(day, date) or isinstance(day, datetime):
            raise ValueError(f"days must be datetime.date values, got {day!r}")
        distinct.add(day)
    return sorted(distinct)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
