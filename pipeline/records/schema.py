"""The ``dds_jobs`` columns (pipeline/records/columns.py) as pandas and Arrow see them, and the frames built on them.

A row of ``dds_jobs`` is the latest known state of one DDS task-center job, keyed by (project_id, id).
The SQLAlchemy table (columns.py), the pyarrow schema and the pandas dtypes below are all built from ``COLUMNS``,
so the warehouse, the Parquet snapshots and the normalized frames cannot drift apart.
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

# Re-exported: the column vocabulary lives in columns.py (light), this module adds its pandas and Arrow forms.
from pipeline.records.columns import (  # noqa: F401
    COLUMN_NAMES,
    COLUMNS,
    DDS_JOBS,
    INDEXED_COLUMNS,
    KEY_COLUMNS,
    KEY_TEXT_LENGTH,
    METADATA,
    MYSQL_FAMILY,
    NOT_NULL_COLUMNS,
    PARTITION_COLUMN,
    TABLE_NAME,
    TERMINAL_STATUSES,
    Column,
    Kind,
    sql_type,
)

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
