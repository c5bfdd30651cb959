"""Loading rows into ``dds_jobs`` on any other SQLAlchemy database: look the keys up, decide in pandas, then
INSERT the new keys and UPDATE the stored ones.

The fast paths (upsert.py, postgres_copy.py) need INSERT ... ON CONFLICT, which only some databases have. This
path uses only the SQL every database has, with the same outcome: the stored rows of the incoming keys are read
and locked (SELECT ... FOR UPDATE where the database has it, so a concurrent load waits for this one instead of
overwriting its update), precedence.py's latest-state rule merges each stored row with its incoming one (a
terminal state never goes back to Running, a field the record lacked keeps its stored value; first_seen_at keeps
the minimum, last_seen_at the maximum), and one executemany inserts and one updates. All of it runs in the
caller's transaction; nothing is deleted.
"""

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pipeline.records.precedence import finished_changes, latest_states, no_unknowns
from pipeline.records.schema import (
    COLUMN_NAMES,
    DDS_JOBS,
    KEY_COLUMNS,
    conform,
    frame_to_arrow,
)
from pipeline.warehouse.upserts.sqlite import UpsertCounts

# Ids per lookup: an IN list well within every database's limit on bound parameters (SQL Server's is 2,100).
KEYS_PER_LOOKUP = 1000
# A load that lost a race to a concurrent one (both inserted the same new job, or the database broke a deadlock
# by rolling one back) is tried again from the start, when the other's rows are visible and locked in turn.
ATTEMPTS = 3
# The UPDATE finds a row by its key under these parameter names, and sets every other column given.
_STORED_KEYS = {name: f"stored_{name}" for name in KEY_COLUMNS}
_UPDATE = DDS_JOBS.update().where(*(DDS_JOBS.c[name] == sa.bindparam(_STORED_KEYS[name]) for name in KEY_COLUMNS))


def upsert_generic(connection: sa.Connection, frame: pd.DataFrame, unknown: np.ndarray | None = None) -> UpsertCounts:
    """Load a conformed frame of distinct keys (``unknown``: the rows' unknown masks, precedence.py) within the
    connection's open transaction."""
    unknown = no_unknowns(len(frame)) if unknown is None else unknown
    # In key order, as the database's primary key index holds them: two loads of the same jobs lock their rows in
    # the same order, and the second waits for the first instead of deadlocking with it.
    frame = frame.reset_index(drop=True).sort_values(list(KEY_COLUMNS))
    frame, unknown = frame.reset_index(drop=True), unknown[frame.index.to_numpy()]
    stored = _stored_rows(connection, frame)
    is_stored = pd.MultiIndex.from_frame(frame[list(KEY_COLUMNS)]).isin(
        pd.MultiIndex.from_frame(stored[list(KEY_COLUMNS)])
    )
    new, seen_again = frame[~is_stored], frame[is_stored]
    finished, left = (0, ""), frozenset()
    if len(seen_again):
        # Each stored row followed by its incoming one, which wins ties as ON CONFLICT's >= does.
        latest, _ = latest_states(pd.concat([stored, seen_again], ignore_index=True),
                                  np.concatenate([no_unknowns(len(stored)), unknown[is_stored]]))
        finished = finished_changes(stored, latest)  # every key is stored: latest holds stored's keys, in order
        moved = (stored["created_date"] != latest["created_date"]).to_numpy(dtype=bool, na_value=False)
        left = frozenset(stored["created_date"][moved].tolist())
        connection.execute(_UPDATE, _parameters(latest, connection.dialect, _STORED_KEYS))
    if len(new):
        connection.execute(DDS_JOBS.insert(), _parameters(new, connection.dialect))
    return UpsertCounts(len(new), len(seen_again), *finished, moved_out_of=left)


def upsert_generic_retrying(
    writing: Callable[[], AbstractContextManager[sa.Connection]], frame: pd.DataFrame, unknown: np.ndarray
) -> UpsertCounts:
    """upsert_generic in a write transaction opened by ``writing``, tried again in a new one when it lost a race
    to a concurrent load (see ATTEMPTS); any other failure, or a race lost ATTEMPTS times, is raised."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with writing() as connection:
                return upsert_generic(connection, frame, unknown)
        except sa.exc.DBAPIError as exc:
            if attempt == ATTEMPTS or not _lost_a_race(exc):
                raise
    raise AssertionError("unreachable")


def _lost_a_race(error: sa.exc.DBAPIError) -> bool:
    # A duplicate key can only come from a concurrent insert (the keys were looked up under lock); deadlocks are
    # reported as such in every database's message (MySQL 1213, PostgreSQL 40P01, SQL Server 1205, Oracle 60).
    return isinstance(error, sa.exc.IntegrityError) or "deadlock" in str(error.orig).lower()


def _stored_rows(connection: sa.Connection, frame: pd.DataFrame) -> pd.DataFrame:
    """The stored rows of the frame's keys, locked for this transaction, as a conformed frame."""
    project, job_id = (DDS_JOBS.c[name] for name in KEY_COLUMNS)
    rows = []
    for project_id, ids in frame.groupby(KEY_COLUMNS[0], sort=False)[KEY_COLUMNS[1]]:
        ids = ids.tolist()
        for start in range(0, len(ids), KEYS_PER_LOOKUP):
            lookup = sa.select(DDS_JOBS).where(project == project_id, job_id.in_(ids[start : start + KEYS_PER_LOOKUP]))
            rows.extend(connection.execute(lookup.with_for_update()).all())
    return conform(pd.DataFrame.from_records(rows, columns=list(COLUMN_NAMES)))


def _parameters(frame: pd.DataFrame, dialect: sa.Dialect, names: Mapping[str, str] | None = None) -> list[dict]:
    """The rows of a conformed frame as parameter dicts of the Python values drivers take: None for every null,
    UTC datetimes (without a zone where the column type has none, e.g. MySQL's DATETIME), dates, floats, text;
    ``names`` renames some parameters."""
    naive = not getattr(DDS_JOBS.c.created_at.type.dialect_impl(dialect), "timezone", False)
    table = frame_to_arrow(frame)
    columns = []
    for field, column in zip(table.schema, table.columns):
        if naive and pa.types.is_timestamp(field.type):
            column = column.cast(pa.timestamp(field.type.unit))
        columns.append(column.to_pylist())
    keys = [(names or {}).get(name, name) for name in table.column_names]
    return [dict(zip(keys, row)) for row in zip(*columns)]
