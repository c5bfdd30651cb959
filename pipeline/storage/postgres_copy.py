"""Loading rows into ``dds_jobs`` on PostgreSQL: COPY into a temporary staging table, then one upsert.

COPY streams the whole frame in one round trip (CSV written by Arrow, no Python work per row); the single
INSERT ... SELECT ... ON CONFLICT that follows applies the same latest-state rule as SQLite (upsert.py), and
RETURNING (xmax = 0) tells inserted rows from updated ones.
"""

import io

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from pipeline.storage.schema import COLUMN_NAMES, KEY_COLUMNS, TABLE_NAME, frame_to_arrow
from pipeline.storage.upsert import UpsertCounts, on_conflict_clause

STAGING_TABLE = f"{TABLE_NAME}_staging"
_COLUMN_LIST = ", ".join(COLUMN_NAMES)
_CREATE_STAGING = f"CREATE TEMPORARY TABLE {STAGING_TABLE} (LIKE {TABLE_NAME} INCLUDING DEFAULTS) ON COMMIT DROP"
_COPY = f"COPY {STAGING_TABLE} ({_COLUMN_LIST}) FROM STDIN (FORMAT csv)"
# In key order, whatever order the rows came in: two loads of the same jobs at once then lock their rows in the
# same order, and the second waits for the first instead of deadlocking with it.
_UPSERT_FROM_STAGING = f"""
WITH upserted AS (
    INSERT INTO {TABLE_NAME} ({_COLUMN_LIST})
    SELECT {_COLUMN_LIST} FROM {STAGING_TABLE} ORDER BY {", ".join(KEY_COLUMNS)}
    {on_conflict_clause()}
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""
# COPY sends the CSV in pieces of this size, so a large frame is never held twice in memory as one bytes object.
_COPY_CHUNK_BYTES = 8 << 20


def upsert_postgres(connection: sa.Connection, frame: pd.DataFrame) -> UpsertCounts:
    """Load a conformed frame of distinct keys within the connection's open transaction."""
    data = postgres_csv(frame)
    dbapi_connection = connection.connection.driver_connection
    with dbapi_connection.cursor() as cursor:
        # The CSV holds UTC wall times without an offset; COPY reads them in the session's zone.
        cursor.execute("SET LOCAL TimeZone = 'UTC'")
        cursor.execute(_CREATE_STAGING)
        with cursor.copy(_COPY) as copy, data.getbuffer() as view:
            for start in range(0, len(view), _COPY_CHUNK_BYTES):
                copy.write(view[start : start + _COPY_CHUNK_BYTES])
        cursor.execute(_UPSERT_FROM_STAGING)
        inserted, updated = cursor.fetchone()
    return UpsertCounts(inserted=inserted, updated=updated)


def postgres_csv(frame: pd.DataFrame) -> io.BytesIO:
    """The frame as CSV for COPY: NULL unquoted and empty, every value quoted, NUL characters removed (PostgreSQL
    text cannot hold them), timestamps as UTC wall time (COPY runs with the session in UTC)."""
    # One chunk per column: Arrow's CSV writer emits junk bytes when a column starts with an empty chunk
    # (apache/arrow#36889), which pandas leaves behind after concatenating frames.
    table = frame_to_arrow(frame).combine_chunks()
    buffer = io.BytesIO()
    pa_csv.write_csv(
        pa.table([_for_csv(column) for column in table.columns], names=table.column_names),
        buffer,
        write_options=pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"),
    )
    return buffer


def _for_csv(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if column.type == pa.string():
        return pc.replace_substring(column, "\x00", "")
    if pa.types.is_timestamp(column.type):
        # Arrow writes zone-aware timestamps ten times slower than naive ones.
        return column.cast(pa.timestamp(column.type.unit))
    return column
