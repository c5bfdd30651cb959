"""The sync ledger, warehouse table ``dds_sync_ledger``: one row per (project_id, created_date) a sync has attempted,
saying when the day was last attempted and when it was last synced completely.

A day is *synced* once a sync fetched the whole of it from the API without an error and loaded its jobs: that sync
sets ``last_complete_at`` and ``jobs`` in the transaction of the load itself, so the ledger never says complete
without the rows, and the rows never land without the ledger saying so. A failed sync sets ``last_attempt_at`` and
``last_error`` in a transaction of its own and leaves an earlier complete sync standing (its rows are still
stored). A failed Parquet snapshot of a day is kept apart, in ``snapshot_error``, until a snapshot of the day is
written: whether it came before or after the day's load, the daily run asks for the day again until both are done
(unsynced_days in pipeline/history.py), while its stored rows stay complete. A day a sync could not fetch whole
(the API holds it only in part, or no longer, or it is not over) gets its attempt recorded and is never marked
complete. What a day's state is today (synced, failed, missing, at risk, gone) is for pipeline/history.py, and for
the view dds_jobs_coverage in SQL.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pipeline.records.columns import Kind, sql_type
from pipeline.warehouse.engine import POSTGRESQL, SQLITE, create_table_when_missing

LEDGER_TABLE = "dds_sync_ledger"
KEY = ("project_id", "created_date")
# An error is kept as one line of at most this many characters: the API's messages are far shorter.
MAX_ERROR_CHARS = 500

SYNC_LEDGER = sa.Table(
    LEDGER_TABLE,
    sa.MetaData(),
    sa.Column("project_id", sql_type(Kind.TEXT, keyed=True), primary_key=True,
              comment="project the day was synced from (key)"),
    sa.Column("created_date", sql_type(Kind.DATE), primary_key=True,
              comment="UTC day of the jobs' created_at: the partition (key)"),
    sa.Column("region", sql_type(Kind.TEXT), comment="region the day was read from, when known"),
    sa.Column("last_attempt_at", sql_type(Kind.TIMESTAMP), nullable=False,
              comment="latest sync of the day, whatever its outcome, UTC"),
    sa.Column("last_complete_at", sql_type(Kind.TIMESTAMP),
              comment="latest sync that fetched the whole day without error, UTC; NULL: never synced"),
    sa.Column("jobs", sa.Integer(), comment="distinct jobs the API returned for the day at that complete sync"),
    sa.Column("last_error", sql_type(Kind.TEXT),
              comment="the last failed attempt's error, one line; cleared by a complete sync"),
    sa.Column("run_id", sql_type(Kind.TEXT), comment="Dagster run of the latest attempt, when run by Dagster"),
    sa.Column("snapshot_error", sql_type(Kind.TEXT),
              comment="the last failed Parquet snapshot of the day, one line; cleared once a snapshot is written"),
    comment="One row per (project_id, created_date) a sync attempted: whether and when the day was synced whole.",
)
_ATTEMPT_COLUMNS = ("region", "last_attempt_at", "run_id")
# A sync's rows leave snapshot_error alone: only a snapshot sets or clears it.
_ALL_COLUMNS = tuple(column.name for column in SYNC_LEDGER.columns if column.name not in (*KEY, "snapshot_error"))


@dataclass(frozen=True)
class Attempt:
    """One sync of one project's days: what every ledger row it writes shares."""

    project_id: str
    at: datetime
    region: str | None = None
    run_id: str | None = None

    def row(self, day: date, dialect: str, *, jobs: int | None = None, error: str | None = None) -> dict[str, object]:
        """The ledger row of ``day`` for this attempt: complete with its ``jobs`` when given, failed with ``error``
        when given, else only attempted."""
        stored_at = stored_utc(self.at, dialect)
        return {"project_id": self.project_id, "created_date": day, "region": self.region,
                "last_attempt_at": stored_at, "last_complete_at": stored_at if jobs is not None else None,
                "jobs": jobs, "last_error": error, "run_id": self.run_id}


@dataclass(frozen=True)
class LedgerDay:
    """One row of the ledger, timestamps as UTC-aware datetimes."""

    project_id: str
    created_date: date
    region: str | None
    last_attempt_at: datetime
    last_complete_at: datetime | None
    jobs: int | None
    last_error: str | None
    run_id: str | None
    snapshot_error: str | None = None

    @property
    def synced(self) -> bool:
        return self.last_complete_at is not None

    @property
    def stored_and_snapshotted(self) -> bool:
        """Synced, and no Parquet snapshot of the day failed since: nothing for a run to redo."""
        return self.synced and self.snapshot_error is None


def stored_utc(at: datetime, dialect: str) -> datetime:
    """``at`` as a ledger stores it: SQLite, MySQL and MariaDB have no zone-aware type, so UTC without an offset
    there, as dds_jobs does."""
    at = at.astimezone(timezone.utc)
    return at if dialect == POSTGRESQL else at.replace(tzinfo=None)


def read_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as UTC-aware: naive values are UTC as stored (SQLite, MySQL); PostgreSQL returns them in
    the session's zone."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def ensure_ledger_table(connection: sa.Connection) -> None:
    """Create the ledger table when missing (within the caller's schema transaction), with the columns added since."""
    create_table_when_missing(connection, SYNC_LEDGER)
    _add_snapshot_error_column(connection)


def _add_snapshot_error_column(connection: sa.Connection) -> None:
    """A ledger created before snapshot_error existed gets the column (NULL: no snapshot failed)."""
    if "snapshot_error" in {column["name"] for column in sa.inspect(connection).get_columns(LEDGER_TABLE)}:
        return
    column_type = SYNC_LEDGER.c.snapshot_error.type.compile(dialect=connection.dialect)
    try:
        connection.execute(sa.text(f"ALTER TABLE {LEDGER_TABLE} ADD COLUMN snapshot_error {column_type}"))
    except sa.exc.DBAPIError:
        # MariaDB's DDL is outside the schema transaction: a concurrent run may have added it first.
        if "snapshot_error" not in {column["name"] for column in sa.inspect(connection).get_columns(LEDGER_TABLE)}:
            raise


def record_sync(connection: sa.Connection, attempt: Attempt, jobs_by_day: Mapping[date, int | None]) -> None:
    """Record a sync that succeeded, within the transaction that loads its rows: a day with a count was fetched
    whole (its jobs: it becomes synced, its last error cleared); a day with None was attempted without being
    fetched whole, and keeps what the ledger said of it."""
    dialect = connection.dialect.name
    complete = [attempt.row(day, dialect, jobs=jobs) for day, jobs in jobs_by_day.items() if jobs is not None]
    attempted = [attempt.row(day, dialect) for day, jobs in jobs_by_day.items() if jobs is None]
    _write(connection, complete, _ALL_COLUMNS)
    _write(connection, attempted, _ATTEMPT_COLUMNS)


def record_failure(connection: sa.Connection, attempt: Attempt, days: Iterable[date], error: BaseException) -> None:
    """Record a sync of ``days`` that failed with ``error``: an earlier complete sync of a day stands."""
    line = error_line(error)
    rows = [attempt.row(day, connection.dialect.name, error=line) for day in days]
    _write(connection, rows, (*_ATTEMPT_COLUMNS, "last_error"))


def record_snapshot_failure(connection: sa.Connection, days: Iterable[date], error: BaseException) -> None:
    """Record that the Parquet snapshots of ``days`` could not be written, on each project's row of those days (a
    day's file holds every project's jobs): the days are asked for again until a snapshot of them is written. A day
    no sync attempted yet has no row, and is asked for anyway."""
    _set_snapshot_error(connection, days, error_line(error))


def record_snapshot_written(connection: sa.Connection, days: Iterable[date]) -> None:
    """Record that the Parquet snapshots of ``days`` were written: an earlier failed snapshot is over."""
    _set_snapshot_error(connection, days, None)


def _set_snapshot_error(connection: sa.Connection, days: Iterable[date], line: str | None) -> None:
    days = list(days)
    if days:
        columns = SYNC_LEDGER.c
        # Clearing touches only the rows that hold an error: a day snapshotted as usual locks no ledger row.
        held = [columns.snapshot_error.is_not(None)] if line is None else []
        connection.execute(SYNC_LEDGER.update().where(columns.created_date.in_(days), *held).values(snapshot_error=line))


def error_line(error: BaseException) -> str:
    """The error as the ledger keeps it: the first line of its message (its type when it has none), bounded."""
    lines = str(error).strip().splitlines()
    return (lines[0].strip() if lines else type(error).__name__)[:MAX_ERROR_CHARS]


def ledger_rows(
    connection: sa.Connection, project_id: str | None = None, first: date | None = None, last: date | None = None
) -> list[LedgerDay]:
    """The ledger's rows (of ``project_id``, or of every project; of the days ``first``..``last`` when given),
    ordered by project and day."""
    columns = SYNC_LEDGER.c
    conditions = [columns.project_id == project_id] if project_id is not None else []
    if first is not None:
        conditions.append(columns.created_date >= first)
    if last is not None:
        conditions.append(columns.created_date <= last)
    statement = sa.select(SYNC_LEDGER).where(*conditions).order_by(columns.project_id, columns.created_date)
    return [LedgerDay(**{**row._mapping, **_utc_times(row)}) for row in connection.execute(statement)]


def _utc_times(row: sa.Row) -> dict[str, datetime | None]:
    return {name: read_utc(row._mapping[name]) for name in ("last_attempt_at", "last_complete_at")}


def _write(connection: sa.Connection, rows: Sequence[dict[str, object]], assigned: Sequence[str]) -> None:
    """Insert ``rows``; a day the ledger already holds gets only its ``assigned`` columns from its row."""
    if not rows:
        return
    dialect = connection.dialect.name
    if dialect in (SQLITE, POSTGRESQL):
        insert = (sqlite_insert if dialect == SQLITE else postgresql_insert)(SYNC_LEDGER)
        assignments = {name: insert.excluded[name] for name in assigned}
        connection.execute(insert.on_conflict_do_update(index_elements=list(KEY), set_=assignments), list(rows))
        return
    # Other databases have no upsert in common: update the days that are there, insert the others. Two runs
    # inserting the same new day collide on the key; the loser's transaction fails and is tried again (the load's
    # generic path retries so; a failure record is best effort).
    update = SYNC_LEDGER.update().where(
        *(SYNC_LEDGER.c[name] == sa.bindparam(f"key_{name}") for name in KEY)
    ).values({name: sa.bindparam(f"new_{name}") for name in assigned})
    absent = []
    for row in rows:
        parameters = {**{f"key_{name}": row[name] for name in KEY}, **{f"new_{name}": row[name] for name in assigned}}
        if connection.execute(update, parameters).rowcount == 0:
            absent.append(row)
    if absent:
        connection.execute(SYNC_LEDGER.insert(), absent)
