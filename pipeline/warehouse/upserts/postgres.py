"""Loading rows into ``dds_jobs`` on PostgreSQL: COPY in binary format, then one upsert.

Binary COPY spares the server parsing text (timestamps above all) and the client formatting it; Arrow builds the
whole stream in a few column-wide operations, with no Python work per row. The rows go to a temporary staging
table with their unknown masks, and INSERT ... SELECT ... ON CONFLICT applies the same latest-state rule as SQLite
(upsert.py): for the rows giving every field, in place first for the rows that keep their indexed values and
finished states, then in full for the others (counting the finished states changed); for the rows lacking fields,
one statement per mask. Each RETURNING (xmax = 0) tells inserted rows from updated ones. Into an empty table the
rows are copied directly.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from pipeline.records.precedence import no_unknowns
from pipeline.records.schema import COLUMN_NAMES, KEY_COLUMNS, TABLE_NAME, frame_to_arrow
from pipeline.warehouse.upserts.sqlite import (
    FinishedTally,
    UpsertCounts,
    finished_changes_counted,
    in_place_clause,
    on_conflict_clause,
    written_in_place,
)

STAGING_TABLE = f"{TABLE_NAME}_staging"
# The staging table's column of each row's unknown mask (precedence.py).
UNKNOWN_COLUMN = "unknown_fields"
_COLUMN_LIST = ", ".join(COLUMN_NAMES)
_KEYS = ", ".join(KEY_COLUMNS)
_CREATE_STAGING = (f"CREATE TEMPORARY TABLE {STAGING_TABLE} (LIKE {TABLE_NAME} INCLUDING DEFAULTS,"
                   f" {UNKNOWN_COLUMN} smallint NOT NULL) ON COMMIT DROP")
_SAME = "IS NOT DISTINCT FROM"


def _upsert_from_staging(where: str, clause: str) -> str:
    """INSERT of the staging rows meeting ``where`` with ``clause`` (ON CONFLICT ...); its (inserted, updated)."""
    # In key order, whatever order the rows came in: two loads of the same jobs at once then lock their rows in the
    # same order, and the second waits for the first instead of deadlocking with it.
    return f"""
WITH upserted AS (
    INSERT INTO {TABLE_NAME} ({_COLUMN_LIST})
    SELECT {_COLUMN_LIST} FROM {STAGING_TABLE} WHERE {where} ORDER BY {_KEYS}
    {clause}
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""


# First pass: new rows, and stored rows whose indexed values and finished state stay, rewritten without the
# precedence rule (in_place_clause: 15% faster); the second pass gives the full rule to the rows the first one
# skipped. Both for the rows giving every field; the others take the clause of their mask.
_UPSERT_IN_PLACE = _upsert_from_staging(f"{UNKNOWN_COLUMN} = 0", in_place_clause(_SAME))
_SKIPPED = f"""
    FROM {STAGING_TABLE} s JOIN {TABLE_NAME} t USING ({_KEYS})
    WHERE s.{UNKNOWN_COLUMN} = 0 AND NOT ({written_in_place("t", "s", _SAME)})
"""
_SKIPPED_KEYS = f"SELECT {', '.join(f's.{name}' for name in KEY_COLUMNS)} {_SKIPPED}"
_UPSERT_SKIPPED = f"""
WITH upserted AS (
    INSERT INTO {TABLE_NAME} ({_COLUMN_LIST})
    SELECT {", ".join(f"s.{name}" for name in COLUMN_NAMES)} {_SKIPPED}
    ORDER BY {", ".join(f"s.{name}" for name in KEY_COLUMNS)}
    {on_conflict_clause()}
    RETURNING 1
)
SELECT count(*) FROM upserted
"""
# The days of the stored rows the staging rows would move to another day (UpsertCounts.moved_out_of). Run after the
# first pass: a row it wrote in place kept its day (created_date is indexed), so only the others are found.
_DAYS_LEFT = f"""
    SELECT DISTINCT t.created_date FROM {STAGING_TABLE} s JOIN {TABLE_NAME} t USING ({_KEYS})
    WHERE t.created_date <> s.created_date
"""
# The sort into key order above spills to disk past the default 4 MB (about 20,000 rows); in memory it is three
# times faster. Local to the load's transaction.
_SORT_MEMORY = "SET LOCAL work_mem = '256MB'"
_TABLE_IS_EMPTY = f"SELECT NOT EXISTS (SELECT 1 FROM {TABLE_NAME})"
# Blocks other loads (it conflicts with the lock every INSERT takes) but not readers; taken only when the table
# looked empty, it makes that emptiness last until this load commits.
_LOCK_OUT_WRITERS = f"LOCK TABLE {TABLE_NAME} IN SHARE ROW EXCLUSIVE MODE"
# COPY sends the stream in pieces of this size.
_COPY_CHUNK_BYTES = 8 << 20

# PostgreSQL's binary COPY: a signature, flags and header extension length, one tuple per row (a field count,
# then each field as a big-endian length, -1 for NULL, and its bytes), and a trailer.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
_NULL_FIELD = pa.scalar(b"\xff\xff\xff\xff", pa.binary())
_NO_BYTES = pa.scalar(b"", pa.binary())
# Binary timestamps count microseconds, and dates days, from 2000-01-01 rather than from 1970-01-01.
_POSTGRES_EPOCH_MICROSECONDS = 946_684_800_000_000
_POSTGRES_EPOCH_DAYS = 10_957


def upsert_postgres(connection: sa.Connection, frame: pd.DataFrame, unknown: np.ndarray | None = None) -> UpsertCounts:
    """Load a conformed frame of distinct keys (``unknown``: the rows' unknown masks, precedence.py) within the
    connection's open transaction."""
    unknown = no_unknowns(len(frame)) if unknown is None else unknown
    dbapi_connection = connection.connection.driver_connection
    finished = FinishedTally()
    with dbapi_connection.cursor() as cursor:
        if _empty_and_locked(cursor):
            # No row can conflict: COPY writes the rows straight into the table (in key order, as the upsert
            # would), skipping the staging table and the upsert's per-row conflict checks.
            _copy(cursor, TABLE_NAME, _COLUMN_LIST, postgres_binary(frame))
            return UpsertCounts(inserted=len(frame), updated=0)
        cursor.execute(_SORT_MEMORY)
        cursor.execute(_CREATE_STAGING)
        _copy(cursor, STAGING_TABLE, f"{_COLUMN_LIST}, {UNKNOWN_COLUMN}", postgres_binary(frame, unknown))
        inserted, updated = cursor.execute(_UPSERT_IN_PLACE).fetchone()
        left = frozenset()
        if inserted + updated < len(frame):
            left = frozenset(day for (day,) in cursor.execute(_DAYS_LEFT).fetchall())
        if inserted + updated < int((unknown == 0).sum()):
            skipped = pd.DataFrame(cursor.execute(_SKIPPED_KEYS).fetchall(), columns=list(KEY_COLUMNS))
            with finished_changes_counted(lambda sql, parameters: cursor.execute(sql, parameters).fetchall(), "%s",
                                          skipped, finished, lock=True):
                updated += cursor.execute(_UPSERT_SKIPPED).fetchone()[0]
        for mask in np.unique(unknown[unknown != 0]).tolist():
            lacking = cursor.execute(_upsert_from_staging(f"{UNKNOWN_COLUMN} = {mask}", on_conflict_clause(
                unknown=mask))).fetchone()
            inserted, updated = inserted + lacking[0], updated + lacking[1]
    return UpsertCounts(inserted, updated, finished.count, finished.sample, left)


def _empty_and_locked(cursor) -> bool:
    """Whether the table is empty, and stays so for this transaction (other loads wait for it to end)."""
    if not cursor.execute(_TABLE_IS_EMPTY).fetchone()[0]:
        return False
    cursor.execute(_LOCK_OUT_WRITERS)
    # Another load may have committed rows between the look and the lock.
    return cursor.execute(_TABLE_IS_EMPTY).fetchone()[0]


def _copy(cursor, table: str, columns: str, data: pa.Buffer) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT binary)") as copy:
        view = memoryview(data)
        for start in range(0, len(view), _COPY_CHUNK_BYTES):
            copy.write(view[start : start + _COPY_CHUNK_BYTES])


def postgres_binary(frame: pd.DataFrame, unknown: np.ndarray | None = None) -> pa.Buffer:
    """The frame's rows in key order as one PostgreSQL binary COPY stream; ``unknown``: the rows' unknown masks, as
    a last smallint column. ValueError for a text holding a NUL character, which PostgreSQL text cannot hold (the
    sync escapes them in the frame, pipeline/records/escape.py: stripped here, two ids would become one)."""
    table = frame_to_arrow(frame).combine_chunks()
    if unknown is not None:
        table = table.append_column(UNKNOWN_COLUMN, pa.array(unknown.astype(np.int16)))
    table = table.take(pc.sort_indices(table, sort_keys=[(name, "ascending") for name in KEY_COLUMNS]))
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) and pc.any(pc.match_substring(column, "\x00")).as_py():
            raise ValueError(f"column {name!r} holds a NUL character, which PostgreSQL text cannot store: escape "
                             "it first (pipeline.records.escape.escape_text, as normalize_jobs does)")
    fields = [_fields(column.combine_chunks()) for column in table.columns]
    rows = pc.binary_join_element_wise(_fixed_width(np.full(table.num_rows, len(fields), ">i2")), *fields, _NO_BYTES)
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=len(rows) + 1, offset=4 * rows.offset)
    body = rows.buffers()[2][offsets[0] : offsets[-1]]
    return pa.py_buffer(b"".join((_BINARY_HEADER, body, _BINARY_TRAILER)))


def _fields(column: pa.Array) -> pa.Array:
    """Each value of ``column`` as a field of a binary COPY tuple: its length, then its bytes."""
    if pa.types.is_string(column.type):
        text = column.cast(pa.binary())
        lengths = pc.binary_length(text).fill_null(-1).to_numpy().astype(">i4")
        return pc.binary_join_element_wise(_fixed_width(lengths), text.fill_null(b""), _NO_BYTES)
    if pa.types.is_timestamp(column.type):
        values, form = column.cast(pa.int64()).fill_null(0).to_numpy() - _POSTGRES_EPOCH_MICROSECONDS, ">i8"
    elif pa.types.is_date(column.type):
        values, form = column.cast(pa.int32()).fill_null(0).to_numpy() - _POSTGRES_EPOCH_DAYS, ">i4"
    elif pa.types.is_int16(column.type):
        values, form = column.fill_null(0).to_numpy(), ">i2"
    else:
        values, form = column.fill_null(0.0).to_numpy(), ">f8"
    fields = np.empty(len(values), dtype=[("length", ">i4"), ("value", form)])
    fields["length"] = np.dtype(form).itemsize
    fields["value"] = values
    fixed = _fixed_width(fields)
    return pc.if_else(column.is_valid(), fixed, _NULL_FIELD) if column.null_count else fixed


def _fixed_width(values: np.ndarray) -> pa.Array:
    """The bytes of each element of ``values`` as a binary array (zero-copy until the cast)."""
    width = values.dtype.itemsize
    array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values)])
    return array.cast(pa.binary())
