"""Loading rows into ``dds_jobs``: one INSERT ... ON CONFLICT statement shared by SQLite and PostgreSQL.

The DO UPDATE clause is the latest-state rule of precedence.py, written as SQL from its column declarations for
the incoming rows' unknown mask: rows that give every field share one statement, rows lacking fields one per mask
(the columns of the fields they lack are not assigned: they keep the stored values). Rows are never deleted.
This module holds the SQLite path (executemany on the raw connection); postgres_copy.py the PostgreSQL one.
Both load into an empty table without the ON CONFLICT clause: nothing is stored that a row could conflict with.
Into a table holding rows, complete rows are first rewritten in place where they keep their indexed values and
change no finished state (in_place_clause), and the rest get the full clause; a finished state changed so is
counted (UpsertCounts.finished_changed).
"""

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from itertools import repeat

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pipeline.records.precedence import (
    COLUMN_RULES,
    FINISHED_COLUMNS,
    Merge,
    finished_changes,
    finished_unchanged_sql,
    merge_assignments,
    no_unknowns,
    sql_quoted,
    terminal_sql,
)
from pipeline.records.schema import (
    COLUMN_NAMES,
    COLUMNS,
    DDS_JOBS,
    INDEXED_COLUMNS,
    KEY_COLUMNS,
    TABLE_NAME,
    Kind,
)
from pipeline.warehouse.engine import SQLITE_CACHE_KIB, SQLITE_LOAD_CACHE_KIB

# Rows converted to SQLite's forms and sent at a time: as text, timestamps take twice the memory of the frame.
ROWS_PER_EXECUTEMANY = 20_000
# Keys looked up at a time when reading stored finished states (well within every database's bound parameters).
KEYS_PER_LOOKUP = 500


@dataclass(frozen=True)
class UpsertCounts:
    """Rows of one upsert: ``inserted`` keys were new to the table, ``updated`` keys were already stored (their
    last_seen_at advanced, and their state replaced unless the incoming one was stale). ``finished_changed``:
    stored finished jobs (terminal status) whose finished state (FINISHED_COLUMNS) a complete record changed;
    ``finished_sample`` describes one of them. ``moved_out_of``: the days stored jobs were on where their incoming
    row names another day, which the upsert may have moved them out of (a stale incoming state moves nothing: such a
    day is then named although it kept the job)."""

    inserted: int
    updated: int
    finished_changed: int = 0
    finished_sample: str = field(default="", compare=False)
    moved_out_of: frozenset[date] = field(default=frozenset(), compare=False)


@dataclass
class FinishedTally:
    """Finished states changed over the passes of one upsert, and the first one's description."""

    count: int = 0
    sample: str = ""

    def add(self, change: tuple[int, str]) -> None:
        self.count += change[0]
        self.sample = self.sample or change[1]


def on_conflict_clause(stored: str = TABLE_NAME, incoming: str = "excluded", unknown: int = 0) -> str:
    """``ON CONFLICT (key) DO UPDATE SET ...`` applying the latest-state rule (``stored`` and ``incoming`` name the
    rows; ``unknown``: the incoming rows' unknown mask)."""
    assignments = merge_assignments(stored, incoming, unknown)
    return f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET " + ", ".join(assignments)


# For a row whose status and other indexed values stay, that is seen no earlier and that leaves a finished state
# as it is, the rule reduces to "every incoming value, first_seen_at as stored".
_IN_PLACE_COLUMNS = tuple(rule.column for rule in COLUMN_RULES if rule.column not in INDEXED_COLUMNS
                          and rule.merge in (Merge.STATE, Merge.FINISHED, Merge.LATEST))
_FINISHED_IN_PLACE = tuple(name for name in FINISHED_COLUMNS if name in _IN_PLACE_COLUMNS)


def in_place_clause(same: str = "IS") -> str:
    """``ON CONFLICT (key) DO UPDATE`` of the unindexed columns, only where the indexed ones stay as they are, the
    incoming row is seen no earlier than the stored one and a stored finished state stays as it is; other
    conflicting rows are left untouched (skipped). For rows giving every field only. ``same`` is the dialect's
    null-safe equality (SQLite ``IS``, PostgreSQL ``IS NOT DISTINCT FROM``).

    Where it writes, it agrees with on_conflict_clause: of two equal statuses the later sighting wins, and
    first_seen_at keeps the stored (earlier) value. The rows it skipped are those written_in_place() is false
    for, once it has run."""
    return (
        f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in _IN_PLACE_COLUMNS)
        + f" WHERE {written_in_place(TABLE_NAME, 'excluded', same, at_or_after='>=')}"
    )


def written_in_place(stored: str, incoming: str, same: str, at_or_after: str = "=") -> str:
    """The condition on a stored and an incoming row under which in_place_clause writes the incoming one (with
    ``at_or_after`` ``>=``), or, once it has run, under which it wrote it (``=``: last_seen_at is then equal)."""
    same_indexed = " AND ".join(f"{stored}.{name} {same} {incoming}.{name}" for name in INDEXED_COLUMNS)
    return (f"{same_indexed} AND {incoming}.last_seen_at {at_or_after} {stored}.last_seen_at"
            f" AND {incoming}.first_seen_at >= {stored}.first_seen_at"
            f" AND {finished_unchanged_sql(stored, incoming, same, _FINISHED_IN_PLACE)}")


def finished_states_sql(placeholder: str, ids: int, terminal_only: bool, lock: bool = False) -> str:
    """SELECT of the finished state of the stored jobs of one project (``placeholder``) with ``ids`` ids (one
    placeholder each); ``terminal_only``: of the finished jobs only; ``lock``: locked for the transaction, in key
    order."""
    terminal = f" AND {terminal_sql(TABLE_NAME)}" if terminal_only else ""
    return (f"SELECT {', '.join((*KEY_COLUMNS, *FINISHED_COLUMNS))} FROM {TABLE_NAME}"
            f" WHERE project_id = {placeholder} AND id IN ({', '.join([placeholder] * ids)}){terminal}"
            + (" ORDER BY id FOR UPDATE" if lock else ""))


@contextmanager
def finished_changes_counted(
    read: Callable[[str, tuple], list[tuple]], placeholder: str, keys: pd.DataFrame, tally: FinishedTally,
    lock: bool = False,
) -> Iterator[None]:
    """Adds to ``tally`` the finished states the block changes among the stored jobs of ``keys`` (project_id and
    id columns). ``read(sql, parameters)`` runs a query in the load's transaction; ``lock``: the stored finished
    jobs are locked first, in key order, so that no other load changes them in between."""
    before = _finished_states(read, placeholder, keys, terminal_only=True, lock=lock)
    yield
    if before.empty:
        return
    after = _finished_states(read, placeholder, before, terminal_only=False)
    tally.add(finished_changes(before, before[list(KEY_COLUMNS)].merge(after, on=list(KEY_COLUMNS), how="left")))


def days_left(read: Callable[[str, tuple], list[tuple]], placeholder: str, rows: pd.DataFrame) -> set[date]:
    """The days the stored rows of the jobs of ``rows`` (incoming, conformed) are on where ``rows`` names another
    day (UpsertCounts.moved_out_of); ``read`` runs a query in the load's transaction."""
    left = set()
    for project_id, jobs in rows.groupby(KEY_COLUMNS[0], sort=False):
        incoming = dict(zip(jobs[KEY_COLUMNS[1]].tolist(), map(str, jobs["created_date"].tolist())))
        ids = list(incoming)
        for start in range(0, len(ids), KEYS_PER_LOOKUP):
            part = ids[start : start + KEYS_PER_LOOKUP]
            statement = (f"SELECT id, created_date FROM {TABLE_NAME} WHERE project_id = {placeholder}"
                         f" AND id IN ({', '.join([placeholder] * len(part))})")
            for job_id, day in read(statement, (project_id, *part)):
                if str(day) != incoming[job_id]:  # SQLite gives the day as its text, other databases as a date
                    left.add(day if isinstance(day, date) else date.fromisoformat(day))
    return left


def _finished_states(read, placeholder: str, keys: pd.DataFrame, terminal_only: bool, lock: bool = False):
    rows = []
    for project_id, ids in keys.groupby(KEY_COLUMNS[0], sort=True)[KEY_COLUMNS[1]]:
        ids = sorted(ids.tolist())
        for start in range(0, len(ids), KEYS_PER_LOOKUP):
            part = ids[start : start + KEYS_PER_LOOKUP]
            rows.extend(read(finished_states_sql(placeholder, len(part), terminal_only, lock), (project_id, *part)))
    return pd.DataFrame.from_records(rows, columns=[*KEY_COLUMNS, *FINISHED_COLUMNS])


IN_PLACE_CLAUSE = in_place_clause()
# Columns whose values come from the sync itself (its settings and clock), never from the API's records.
LITERAL_COLUMNS = frozenset({"project_id", "region", "first_seen_at", "last_seen_at"})
_INSERT_PREFIX = f"INSERT INTO {TABLE_NAME} ({', '.join(COLUMN_NAMES)}) VALUES "
_NOT_SEEN_NOW = (
    f"SELECT id FROM {TABLE_NAME} WHERE project_id = ? AND created_date BETWEEN ? AND ? AND last_seen_at <> ?"
)


def upsert_sqlite(connection: sa.Connection, frame: pd.DataFrame, unknown: np.ndarray | None = None) -> UpsertCounts:
    """Load a conformed frame of distinct keys (``unknown``: the rows' unknown masks, precedence.py) within the
    connection's open write transaction."""
    unknown = no_unknowns(len(frame)) if unknown is None else unknown
    # In creation order a day's rows end up side by side in the table, so reading days back (snapshots, checks,
    # analysts' queries by day) reads neighbouring pages instead of one page per row: three times faster.
    order = frame["created_at"].argsort(kind="stable").to_numpy()
    cursor = connection.connection.driver_connection.cursor()
    finished = FinishedTally()
    left: set[date] = set()
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
                positions = order[start : start + ROWS_PER_EXECUTEMANY]
                chunk = frame.iloc[positions]
                if into_empty_table:
                    rows = SqliteRows.of(chunk)
                    cursor.executemany(rows.statement(), rows.values())
                else:
                    left |= _upsert_sqlite_chunk(cursor, chunk, unknown[positions], finished)
        inserted = cursor.execute(f"SELECT count(*) FROM {TABLE_NAME} WHERE rowid > ?", (last_rowid,)).fetchone()[0]
    finally:
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute("PRAGMA shrink_memory")
        cursor.close()
    return UpsertCounts(inserted, len(frame) - inserted, finished.count, finished.sample, frozenset(left))


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


def _upsert_sqlite_chunk(
    cursor: sqlite3.Cursor, chunk: pd.DataFrame, unknown: np.ndarray, finished: FinishedTally
) -> set[date]:
    """Upsert the rows of ``chunk`` into a table that holds rows already, counting the finished states changed.

    Most rows of a re-sync change nothing the indexes hold: the same status, instance and day, seen again later.
    SQLite rewrites the index entries of every column an UPDATE assigns, whatever the value, and evaluates the
    precedence rule once per assigned column; for those rows the IN_PLACE_CLAUSE assigns only the unindexed
    columns, without the rule (it reduces to "the later sighting wins"), and skips every other row. The skipped
    rows are then found (their last_seen_at is not this sync's) and given the full clause. Half the time of a
    30,000-row re-sync went to those index entries and rules. A chunk whose project or last_seen_at differs between
    rows takes the full clause at once. Rows lacking fields take the clause of their unknown mask; they never
    change a finished state (the rule keeps it). Returns the days jobs may have moved out of (UpsertCounts).

    A row written in place keeps its day (created_date is indexed): only the others can move a job."""
    rows = SqliteRows.of(chunk)
    values = list(rows.values())
    read = lambda sql, parameters: cursor.execute(sql, parameters).fetchall()  # noqa: E731
    left = days_left(read, "?", chunk.loc[unknown != 0]) if unknown.any() else set()
    for mask in np.unique(unknown[unknown != 0]).tolist():
        cursor.executemany(rows.statement(on_conflict_clause(unknown=mask)), _of(values, unknown == mask))
    full = _not_written_in_place(cursor, rows, chunk, unknown == 0, values)
    if full.any():
        left |= days_left(read, "?", chunk.loc[full])
        with finished_changes_counted(read, "?", chunk.loc[full], finished):
            cursor.executemany(rows.statement(on_conflict_clause()), _of(values, full))
    return left


def _of(values: list[tuple], wanted: np.ndarray) -> list[tuple]:
    """The rows of ``values`` where ``wanted`` holds."""
    return values if wanted.all() else [values[i] for i in np.flatnonzero(wanted)]


def _not_written_in_place(
    cursor: sqlite3.Cursor, rows: "SqliteRows", chunk: pd.DataFrame, complete: np.ndarray, values: list[tuple]
) -> np.ndarray:
    """Rewrite in place what of the ``complete`` rows it can (see _upsert_sqlite_chunk); which rows are left to the
    full clause."""
    project_id, seen_at = rows.literals["project_id"], rows.literals["last_seen_at"]
    if project_id is None or seen_at is None or not complete.any():
        return complete
    cursor.executemany(rows.statement(IN_PLACE_CLAUSE), _of(values, complete))
    skipped = int(complete.sum()) - cursor.rowcount
    if not skipped:
        return np.zeros(len(complete), dtype=bool)
    # Every row the statement wrote carries this sync's last_seen_at; a skipped row kept an older one.
    days = chunk["created_date"]
    others = cursor.execute(_NOT_SEEN_NOW, (project_id, str(days.min()), str(days.max()), seen_at)).fetchall()
    left = chunk["id"].isin({job_id for (job_id,) in others}).to_numpy() & complete
    # A row skipped because its day changed is stored under a day out of that range: all rows then take the
    # full clause, which leaves the rows just written as they are.
    return complete if int(left.sum()) != skipped else left


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
    return sql_quoted(first)


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
