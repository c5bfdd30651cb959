"""The sync ledger, warehouse table ``dds_sync_ledger``: one row per (project_id, created_date) a sync has attempted,
saying when the day was last attempted and when it was last synced completely.

A day is *synced* once a sync fetched the whole of it from the API without an error and loaded its jobs: that sync
sets ``last_complete_at`` and ``jobs`` in the transaction of the load itself, so the ledger never says complete
without the rows, and the rows never land without the ledger saying so. A run whose Parquet snapshot of a day then
fails withdraws the day's complete sync (record_snapshot_failure), so that the day is asked for again. A failed sync sets ``last_attempt_at`` and
``last_error`` in a transaction of its own and leaves an earlier complete sync standing (its rows are still
stored). A day a sync could not fetch whole (the API holds it only in part, or no longer, or it is not over) gets
its attempt recorded and is never marked complete. What a day's state is today (synced, failed, missing, at risk,
gone) is for pipeline/coverage.py, and for the view dds_jobs_coverage in SQL.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pipeline.jobs.schema import Kind, sql_type
from pipeline.warehouse.engine import POSTGRESQL, SQLITE

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
    comment="One row per (project_id, created_date) a sync attempted: whether and when the day was synced whole.",
)
_ATTEMPT_COLUMNS = ("region", "last_attempt_at", "run_id")
_ALL_COLUMNS = tuple(column.name for column in SYNC_LEDGER.columns if column.name not in KEY)


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
        stored_at = _stored_time(self.at, dialect)
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

    @property
    def synced(self) -> bool:
        return self.last_complete_at is not None


def ensure_ledger_table(connection: sa.Connection) -> None:
    """Create the ledger table when missing (within the caller's schema transaction); a table a concurrent run
    created first is taken as it is."""
    if connection.dialect.name in (SQLITE, POSTGRESQL):
        connection.execute(sa.schema.CreateTable(SYNC_LEDGER, if_not_exists=True))
        return
    try:
        SYNC_LEDGER.create(connection, checkfirst=True)
    except sa.exc.DBAPIError:
        if not sa.inspect(connection).has_table(LEDGER_TABLE):
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


def record_snapshot_failure(
    connection: sa.Connection, days: Iterable[date], error: BaseException, at: datetime, run_id: str | None = None
) -> None:
    """Record that the Parquet snapshots of ``days`` could not be written (after their load, or instead of it): each
    project's complete sync of those days is withdrawn and the error kept. The warehouse keeps its rows; the days
    count as not synced (failed), so the daily run asks for them again until a run stores and snapshots them."""
    days = list(days)
    if not days:
        return
    connection.execute(
        SYNC_LEDGER.update().where(SYNC_LEDGER.c.created_date.in_(days)).values(
            last_attempt_at=_stored_time(at, connection.dialect.name), last_complete_at=None,
            last_error=error_line(error), run_id=run_id,
        )
    )


def _stored_time(at: datetime, dialect: str) -> datetime:
    """``at`` as the ledger stores it: SQLite, MySQL and MariaDB have no zone-aware type, so UTC without a zone there
    (as dds_jobs does)."""
    at = at.astimezone(timezone.utc)
    return at if dialect == POSTGRESQL else at.replace(tzinfo=None)


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
    # Naive values are UTC as stored (SQLite, MySQL); PostgreSQL returns them in the session's zone.
    times = {}
    for name in ("last_attempt_at", "last_complete_at"):
        value = row._mapping[name]
        if value is not None:
            value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        times[name] = value
    return times


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
