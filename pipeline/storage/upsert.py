"""Loading rows into ``dds_jobs``: one INSERT ... ON CONFLICT statement shared by SQLite and PostgreSQL.

The DO UPDATE clause applies the rule of precedence.py in SQL: the stored state is replaced only by a state of
equal or higher rank (terminal beats non-terminal) seen at the same time or later; first_seen_at keeps the
minimum and last_seen_at the maximum whatever wins. Rows are never deleted.
This module holds the SQLite path (executemany on the raw connection); postgres_copy.py the PostgreSQL one.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pipeline.storage.schema import (
    COLUMN_NAMES,
    COLUMNS,
    KEY_COLUMNS,
    TABLE_NAME,
    TERMINAL_STATUSES,
    Kind,
)

_NON_KEY_COLUMNS = tuple(name for name in COLUMN_NAMES if name not in KEY_COLUMNS)
# Rows converted to SQLite's forms and sent at a time: as text, timestamps take twice the memory of the frame.
ROWS_PER_EXECUTEMANY = 20_000


@dataclass(frozen=True)
class UpsertCounts:
    """Rows of one upsert: ``inserted`` keys were new to the table, ``updated`` keys were already stored (their
    last_seen_at advanced, and their state replaced unless the incoming one was stale)."""

    inserted: int
    updated: int


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def on_conflict_clause(stored: str = TABLE_NAME, incoming: str = "excluded") -> str:
    """``ON CONFLICT (key) DO UPDATE SET ...`` keeping the latest state (``stored`` and ``incoming`` name the rows)."""
    terminal = ", ".join(_quoted(s) for s in TERMINAL_STATUSES)
    later = f"{incoming}.last_seen_at >= {stored}.last_seen_at"
    # A stored terminal state yields only to a terminal one seen later; a stored non-terminal state yields to any
    # terminal one, or to anything seen later. (A NULL status counts as non-terminal.)
    incoming_wins = (
        f"CASE WHEN COALESCE({stored}.status, '') IN ({terminal})"
        f" THEN COALESCE({incoming}.status, '') IN ({terminal}) AND {later}"
        f" ELSE COALESCE({incoming}.status, '') IN ({terminal}) OR {later} END"
    )
    conditions = {
        "first_seen_at": f"{incoming}.first_seen_at < {stored}.first_seen_at",
        "last_seen_at": f"{incoming}.last_seen_at > {stored}.last_seen_at",
    }
    assignments = (
        f"{name} = CASE WHEN {conditions.get(name, incoming_wins)} THEN {incoming}.{name} ELSE {stored}.{name} END"
        for name in _NON_KEY_COLUMNS
    )
    return f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET " + ", ".join(assignments)


SQLITE_UPSERT = (
    f"INSERT INTO {TABLE_NAME} ({', '.join(COLUMN_NAMES)}) VALUES ({', '.join('?' for _ in COLUMN_NAMES)}) "
    + on_conflict_clause()
)


def upsert_sqlite(connection: sa.Connection, frame: pd.DataFrame) -> UpsertCounts:
    """Load a conformed frame of distinct keys within the connection's open write transaction."""
    # In creation order a day's rows end up side by side in the table, so reading days back (snapshots, checks,
    # analysts' queries by day) reads neighbouring pages instead of one page per row: three times faster.
    order = frame["created_at"].argsort(kind="stable").to_numpy()
    cursor = connection.connection.driver_connection.cursor()
    try:
        # A new row gets a rowid above every rowid the table held (SQLite's rule for tables without
        # AUTOINCREMENT), and the write lock is held: the rows past the largest rowid of before the load are the
        # inserted ones. Counted so, instead of looking every key up beforehand.
        last_rowid = cursor.execute(f"SELECT coalesce(max(rowid), 0) FROM {TABLE_NAME}").fetchone()[0]
        for start in range(0, len(order), ROWS_PER_EXECUTEMANY):
            cursor.executemany(SQLITE_UPSERT, sqlite_rows(frame.iloc[order[start : start + ROWS_PER_EXECUTEMANY]]))
        inserted = cursor.execute(f"SELECT count(*) FROM {TABLE_NAME} WHERE rowid > ?", (last_rowid,)).fetchone()[0]
    finally:
        cursor.close()
    return UpsertCounts(inserted=inserted, updated=len(frame) - inserted)


def sqlite_rows(frame: pd.DataFrame) -> Iterator[tuple]:
    """The frame's rows as plain tuples in SQLite's storage forms: UTC 'YYYY-MM-DD HH:MM:SS.ffffff' timestamps
    (the form SQLAlchemy reads back) and 'YYYY-MM-DD' dates."""
    return zip(*(_sqlite_values(frame[c.name], c.kind) for c in COLUMNS))


def _sqlite_values(series: pd.Series, kind: Kind) -> np.ndarray:
    if kind is Kind.TEXT:
        return series.to_numpy(dtype=object)
    if kind is Kind.FLOAT:
        values = series.to_numpy(dtype=float)
        return np.where(np.isnan(values), None, values.astype(object))
    array = pa.array(series)
    if kind is Kind.TIMESTAMP:
        array = array.cast(pa.timestamp("us"))
    return array.cast(pa.string()).to_numpy(zero_copy_only=False)
