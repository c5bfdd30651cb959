"""Loading rows into ``dds_jobs``: one INSERT ... ON CONFLICT statement shared by SQLite and PostgreSQL.

The DO UPDATE clause applies the rule of precedence.py in SQL: the stored state is replaced only by a state of
equal or higher rank (terminal beats non-terminal) seen at the same time or later; first_seen_at keeps the
minimum and last_seen_at the maximum whatever wins. Rows are never deleted.
This module holds the SQLite path (executemany on the raw connection); postgres_copy.py the PostgreSQL one.
Both load into an empty table without the ON CONFLICT clause: nothing is stored that a row could conflict with.
Into a table holding rows, SQLite first rewrites in place what keeps its indexed values (in_place_clause), and
gives the full clause to the rest only.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pipeline.storage.engine import SQLITE_CACHE_KIB, SQLITE_LOAD_CACHE_KIB
from pipeline.storage.schema import (
    COLUMN_NAMES,
    COLUMNS,
    DDS_JOBS,
    INDEXED_COLUMNS,
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


def in_place_clause(same: str = "IS") -> str:
    """``ON CONFLICT (key) DO UPDATE`` of the unindexed columns, only where the indexed ones stay as they are and
    the incoming row is seen no earlier than the stored one; other conflicting rows are left untouched (skipped).
    ``same`` is the dialect's null-safe equality (SQLite ``IS``, PostgreSQL ``IS NOT DISTINCT FROM``).

    Where it writes, it agrees with on_conflict_clause: of two equal statuses the later sighting wins, and
    first_seen_at keeps the stored (earlier) value. The rows it skipped are those written_in_place() is false
    for, once it has run."""
    assigned = [name for name in _NON_KEY_COLUMNS if name not in INDEXED_COLUMNS and name != "first_seen_at"]
    return (
        f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in assigned)
        + f" WHERE {written_in_place(TABLE_NAME, 'excluded', same, at_or_after='>=')}"
    )


def written_in_place(stored: str, incoming: str, same: str, at_or_after: str = "=") -> str:
    """The condition on a stored and an incoming row under which in_place_clause writes the incoming one (with
    ``at_or_after`` ``>=``), or, once it has run, under which it wrote it (``=``: last_seen_at is then equal)."""
    same_indexed = " AND ".join(f"{stored}.{name} {same} {incoming}.{name}" for name in INDEXED_COLUMNS)
    return (f"{same_indexed} AND {incoming}.last_seen_at {at_or_after} {stored}.last_seen_at"
            f" AND {incoming}.first_seen_at >= {stored}.first_seen_at")


IN_PLACE_CLAUSE = in_place_clause()
# Columns whose values come from the sync itself (its settings and clock), never from the API's records.
LITERAL_COLUMNS = frozenset({"project_id", "region", "first_seen_at", "last_seen_at"})
_INSERT_PREFIX = f"INSERT INTO {TABLE_NAME} ({', '.join(COLUMN_NAMES)}) VALUES "
_NOT_SEEN_NOW = (
    f"SELECT id FROM {TABLE_NAME} WHERE project_id = ? AND created_date BETWEEN ? AND ? AND last_seen_at <> ?"
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
        # The write lock is held since BEGIN: an empty table stays empty until these rows, so none can conflict.
        into_empty_table = cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {TABLE_NAME})").fetchone()[0]
        # Every page of the table's indexes is touched: a large cache for the load, released when it is done.
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_LOAD_CACHE_KIB}")
        with secondary_indexes_built_after(connection) if into_empty_table else nullcontext():
            for start in range(0, len(order), ROWS_PER_EXECUTEMANY):
                chunk = frame.iloc[order[start : start + ROWS_PER_EXECUTEMANY]]
                if into_empty_table:
                    rows = SqliteRows.of(chunk)
                    cursor.executemany(rows.statement(), rows.values())
                else:
                    _upsert_sqlite_chunk(cursor, chunk)
        inserted = cursor.execute(f"SELECT count(*) FROM {TABLE_NAME} WHERE rowid > ?", (last_rowid,)).fetchone()[0]
    finally:
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute("PRAGMA shrink_memory")
        cursor.close()
    return UpsertCounts(inserted=inserted, updated=len(frame) - inserted)


@contextmanager
def secondary_indexes_built_after(connection: sa.Connection) -> Iterator[None]:
    """Drops the table's secondary indexes for the block and creates them again after it, in the same transaction
    (a failure restores them with the rest): one sort per index instead of one B-tree insertion per row and index.
    Worth it only when the block writes most of the table's rows, e.g. the first load into an empty table."""
    indexes = sorted(DDS_JOBS.indexes, key=lambda index: index.name)
    for index in indexes:
        connection.execute(sa.schema.DropIndex(index))
    yield
    for index in indexes:
        connection.execute(sa.schema.CreateIndex(index))


def _upsert_sqlite_chunk(cursor: sqlite3.Cursor, chunk: pd.DataFrame) -> None:
    """Upsert the rows of ``chunk`` into a table that holds rows already.

    Most rows of a re-sync change nothing the indexes hold: the same status, instance and day, seen again later.
    SQLite rewrites the index entries of every column an UPDATE assigns, whatever the value, and evaluates the
    precedence rule once per assigned column; for those rows the IN_PLACE_CLAUSE assigns only the unindexed
    columns, without the rule (it reduces to "the later sighting wins"), and skips every other row. The skipped
    rows are then found (their last_seen_at is not this sync's) and given the full clause. Half the time of a
    30,000-row re-sync went to those index entries and rules. A chunk whose project or last_seen_at differs between
    rows takes the full clause at once."""
    rows = SqliteRows.of(chunk)
    project_id, seen_at = rows.literals["project_id"], rows.literals["last_seen_at"]
    if project_id is None or seen_at is None:
        cursor.executemany(rows.statement(on_conflict_clause()), rows.values())
        return
    values = list(rows.values())
    cursor.executemany(rows.statement(IN_PLACE_CLAUSE), values)
    skipped = len(values) - cursor.rowcount
    if not skipped:
        return
    # Every row the statement wrote carries this sync's last_seen_at; a skipped row kept an older one.
    days = chunk["created_date"]
    others = cursor.execute(_NOT_SEEN_NOW, (project_id, str(days.min()), str(days.max()), seen_at)).fetchall()
    left = chunk["id"].isin({job_id for (job_id,) in others}).to_numpy()
    # A row skipped because its day changed is stored under a day out of that range: all rows then take the
    # full clause, which leaves the rows just written as they are.
    retry = values if int(left.sum()) != skipped else [row for row, keep in zip(values, left) if keep]
    cursor.executemany(rows.statement(on_conflict_clause()), retry)


@dataclass(frozen=True)
class SqliteRows:
    """Rows of a frame in SQLite's storage forms, for INSERT statements.

    A column of the sync's own values (LITERAL_COLUMNS: the project, the region, the sync's first_seen_at and
    last_seen_at) holding one value in every row, or any column that is NULL in every row, is written into the
    statement as a literal rather than bound on each row: binding is most of sqlite3's own cost per row, and this
    takes about a third of it away. What the API sent is always bound."""

    columns: list[np.ndarray]
    # Per column: its one value's SQL literal, or None when the column is bound.
    sql_literals: list[str | None]
    # The one value of each LITERAL_COLUMNS column that holds one, as stored; None for the others.
    literals: dict[str, str | None]
    count: int

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "SqliteRows":
        columns = [_sqlite_values(frame[c.name], c.kind) for c in COLUMNS]
        sql_literals = [_sql_literal(values, c.name in LITERAL_COLUMNS) for c, values in zip(COLUMNS, columns)]
        literals = {
            c.name: values[0] if literal is not None and literal != "NULL" else None
            for c, values, literal in zip(COLUMNS, columns, sql_literals) if c.name in LITERAL_COLUMNS
        }
        return cls(columns, sql_literals, literals, len(frame))

    def statement(self, clause: str = "") -> str:
        placeholders = ", ".join("?" if literal is None else literal for literal in self.sql_literals)
        return f"{_INSERT_PREFIX}({placeholders}) {clause}".rstrip()

    def values(self) -> Iterator[tuple]:
        bound = [values for values, literal in zip(self.columns, self.sql_literals) if literal is None]
        # One row holds one value in every column: nothing is left to bind, and the statement runs once per row.
        return zip(*bound) if bound else repeat((), self.count)


def _sql_literal(values: np.ndarray, ours: bool) -> str | None:
    """The SQL literal of the one value ``values`` holds in every row: NULL, or (for a column of the sync's own
    values, ``ours``) a text SQL can spell (no NUL character); None otherwise, and the column is bound."""
    if len(values) == 0:
        return None
    first = values[0]
    if first is None:
        return "NULL" if all(value is None for value in values) else None
    if not ours or not isinstance(first, str) or "\x00" in first or not bool((values == first).all()):
        return None
    return _quoted(first)


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
