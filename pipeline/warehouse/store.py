"""The SQL warehouse of DDS jobs: the ``dds_jobs`` table and its views, on SQLite, PostgreSQL or any other
database SQLAlchemy has a dialect and an installed driver for (SQLAlchemy Core).

A row is the latest known state of one job (project_id, id); a *day* is a UTC calendar day of created_at
(``created_date``, indexed), the unit every read and the daily sync work in.
"""

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pipeline.records.precedence import UNKNOWN_DTYPE, latest_states
from pipeline.records.schema import (
    ARROW_SCHEMA,
    COLUMN_NAMES,
    COLUMNS,
    DDS_JOBS,
    KEY_COLUMNS,
    TABLE_NAME,
    Column,
    Kind,
    arrow_to_frame,
    as_days,
    conform,
)
from pipeline.warehouse.engine import (
    POSTGRESQL,
    SQLITE,
    WRITE,
    create_warehouse_engine,
    parse_warehouse_url,
)
from pipeline.warehouse.ledger import ensure_ledger_table
from pipeline.warehouse.upserts.generic import upsert_generic_retrying
from pipeline.warehouse.upserts.postgres import upsert_postgres
from pipeline.warehouse.upserts.sqlite import UpsertCounts, upsert_sqlite
from pipeline.warehouse.views import update_views, update_views_where_possible

# Serializes schema changes of concurrent runs on PostgreSQL (CREATE ... IF NOT EXISTS alone can still race).
_SCHEMA_LOCK_KEY = 0x0DD5_0B5
# The databases with a bulk upsert of their own; any other loads through generic_upsert.py.
_UPSERTS = {SQLITE: upsert_sqlite, POSTGRESQL: upsert_postgres}
# Timestamps and dates are read as the driver returns them: SQLite's text is then parsed by Arrow a column at a
# time, many times faster than SQLAlchemy's parsing of each value (psycopg returns datetimes either way).
_AS_STORED = {
    spec.name: sa.type_coerce(column, sa.Text) if spec.kind in (Kind.TIMESTAMP, Kind.DATE) else column
    for spec, column in zip(COLUMNS, DDS_JOBS.c)
}


class Warehouse:
    """The warehouse at a SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``, ``mysql+pymysql://...``).

    The URL is checked at once (ValueError, before any connection); the database is first touched by the first
    method that needs it, which also creates the table, indexes and views when missing.
    """

    def __init__(self, url: str) -> None:
        self._url = parse_warehouse_url(url)
        self._engine = create_warehouse_engine(self._url)
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"Warehouse({self._url.render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        """The URL's database: ``sqlite``, ``postgresql``, or another SQLAlchemy dialect name such as ``mysql``."""
        return self._url.get_backend_name()

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, for tools that take one (e.g. ``pandas.read_sql``)."""
        return self._engine

    def dispose(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    def ensure_schema(self) -> None:
        """Create the table and its indexes when missing, and the sync ledger (ledger.py), and create or replace
        the analyst views of sql/views/ whose definition changed (views.py)."""
        if self.dialect not in _UPSERTS:
            self._ensure_schema_portably()
            return
        with self._writing() as connection:
            if self.dialect == POSTGRESQL:
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
            connection.execute(sa.schema.CreateTable(DDS_JOBS, if_not_exists=True))
            for index in sorted(DDS_JOBS.indexes, key=lambda ix: ix.name):
                connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))
            _check_stored_columns(connection)
            ensure_ledger_table(connection)
            update_views(connection)
        self._schema_ready = True

    def upsert(self, frame: pd.DataFrame, unknown: np.ndarray | None = None,
               then: Callable[[sa.Connection], None] | None = None) -> UpsertCounts:
        """Insert new jobs and update stored ones, all in one transaction (a failure leaves the table as it was).

        The latest-state rule of precedence.py decides each stored row's new values: a stored terminal state is
        never replaced by a stale non-terminal one; first_seen_at keeps the minimum, last_seen_at the maximum.
        ``unknown``: the rows' unknown masks (NormalizedJobs.unknown; None: every row gives every field); a field a
        row lacks keeps its stored value, and a finished job's state changes only on a row lacking none. Several
        rows of one key in ``frame`` are first reduced by the same rule. ``then`` writes more in the same
        transaction, after the rows (also when there are none): what it writes is committed with them or not at all.
        """
        frame = conform(frame)
        return self.upsert_latest(*latest_states(frame, _checked_unknown(unknown, len(frame))), then=then)

    def upsert_latest(self, frame: pd.DataFrame, unknown: np.ndarray | None = None,
                      then: Callable[[sa.Connection], None] | None = None) -> UpsertCounts:
        """upsert of a batch already reduced to one row per job by precedence.latest_states (the sync's, which
        counts the reduced rows): the one reduction of the batch is the caller's. ValueError for a job twice."""
        frame = conform(frame)
        unknown = _checked_unknown(unknown, len(frame))
        if not frame.empty and frame.duplicated(list(KEY_COLUMNS)).any():
            raise ValueError("upsert_latest takes one row per (project_id, id): reduce the batch with "
                             "precedence.latest_states first, or call upsert")
        if frame.empty and then is None:
            return UpsertCounts(0, 0)
        self._ensure_schema_once()
        writing = self._writing if then is None else self._writing_then(then)
        if frame.empty:
            with writing():
                return UpsertCounts(0, 0)
        if self.dialect not in _UPSERTS:
            return upsert_generic_retrying(writing, frame, unknown)
        with writing() as connection:
            return _UPSERTS[self.dialect](connection, frame, unknown)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction of its own (the schema made ready first): committed when the block ends, rolled
        back when it raises."""
        self._ensure_schema_once()
        with self._writing() as connection:
            yield connection

    def connect(self) -> sa.Connection:
        """A connection for reading (the schema made ready first), to be used as a context manager."""
        return self._reading()

    def read_days(
        self, days: Iterable[date], project_id: str | None = None, columns: Sequence[str] = COLUMN_NAMES
    ) -> pd.DataFrame:
        """The stored jobs created on ``days`` (UTC), sorted by key, with the dtypes of normalize_jobs' frames;
        only ``columns`` (all by default) are read."""
        table = self.read_days_table(days, project_id, columns)
        return arrow_to_frame(table, table.column_names)

    def read_days_table(
        self, days: Iterable[date], project_id: str | None = None, columns: Sequence[str] = COLUMN_NAMES
    ) -> pa.Table:
        """read_days as an Arrow table of ``ARROW_SCHEMA``'s types (columns in its order): what the Parquet
        snapshots and the checks work on, without making a pandas object of every value."""
        wanted = as_days(days)
        unknown = [name for name in columns if name not in COLUMN_NAMES]
        if unknown or not columns:
            raise ValueError(f"columns must be some of {list(COLUMN_NAMES)}, got {list(columns)!r}")
        specs = [c for c in COLUMNS if c.name in columns]
        # Sorted by key afterwards, in Arrow: an ORDER BY makes SQLite sort the rows in a temporary B-tree.
        statement = sa.select(*(_AS_STORED[c.name] for c in specs)).where(*self._filters(wanted, project_id))
        # A row object per row, then a tuple per column: allocations that set off collections which scan every
        # row and free nothing. They are all freed before collections resume, or the first one would scan them.
        with self._reading() as connection, _collection_paused():
            rows = connection.execute(statement).all() if wanted else []
            values = list(zip(*rows)) if rows else [() for _ in specs]
            del rows
            table = _table_from_columns(values, specs)
            del values
        return table

    def count_by_day(self, days: Iterable[date], project_id: str | None = None) -> dict[date, int]:
        """Stored jobs per day, every day of ``days`` included (0 when none)."""
        wanted = as_days(days)
        created_date = DDS_JOBS.c.created_date
        # The project filters the count, not the rows: as a WHERE condition PostgreSQL may read the primary key's
        # whole index for it (most rows are of one project), which took a daily run from 0.14 to 0.24 s once a
        # million rows were stored.
        count = sa.func.count()
        if project_id is not None:
            count = _count_where(DDS_JOBS.c.project_id == project_id, self.dialect)
        statement = sa.select(created_date, count).where(*self._filters(wanted, None)).group_by(created_date)
        with self._reading() as connection:
            counts = dict(connection.execute(statement).all()) if wanted else {}
        return {day: int(counts.get(day, 0)) for day in sorted(wanted)}

    def day_batches(self, days: Iterable[date], max_rows: int) -> list[list[date]]:
        """``days`` in consecutive groups of at most ``max_rows`` stored jobs each (a busier day forms a group alone):
        for reading many days back a bounded number of rows at a time."""
        batches: list[list[date]] = []
        rows = 0
        for day, count in self.count_by_day(days).items():
            if not batches or rows + count > max_rows:
                batches.append([])
                rows = 0
            batches[-1].append(day)
            rows += count
        return batches

    def key_is_enforced(self) -> bool:
        """Whether the table's primary key is (project_id, id), so that the database refuses a key stored twice (a
        table created by hand or by another tool may have none)."""
        self._ensure_schema_once()
        return sa.inspect(self._engine).get_pk_constraint(TABLE_NAME)["constrained_columns"] == list(KEY_COLUMNS)

    def days_with_status(self, status: str, since: date, project_id: str | None = None) -> list[date]:
        """The days from ``since`` on holding at least one job in ``status`` (e.g. Running ones to re-sync)."""
        if not isinstance(status, str) or not status:
            raise ValueError(f"status must be a non-empty string, got {status!r}")
        since = as_days([since])[0]
        conditions = [DDS_JOBS.c.status == status, DDS_JOBS.c.created_date >= since]
        if project_id is not None:
            conditions.append(DDS_JOBS.c.project_id == project_id)
        statement = sa.select(DDS_JOBS.c.created_date).where(*conditions).distinct().order_by(DDS_JOBS.c.created_date)
        with self._reading() as connection:
            return list(connection.execute(statement).scalars())

    def query(self, sql: str, **params: object) -> pd.DataFrame:
        """The result of one read-only SQL statement with ``:name`` parameters bound from ``params``.

        Dates and datetimes bind as such on both databases (naive datetimes are read as UTC); a list or tuple
        binds an ``IN :name`` list. The statement runs in a transaction that is rolled back: it changes nothing.
        Numbers come back as numbers on every database: a column of Decimals (a SUM on PostgreSQL or MariaDB) as
        int64 when they are all whole, else float64.
        """
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError("query needs a non-empty SQL string")
        try:
            statement = sa.text(sql).bindparams(*(_bind(name, value) for name, value in params.items()))
        except sa.exc.ArgumentError as exc:
            raise ValueError(f"query parameters do not match the SQL: {exc}") from None
        with self._reading() as connection:
            result = connection.execute(statement, {k: _utc(v) for k, v in params.items()})
            if not result.returns_rows:
                raise ValueError("query runs statements that return rows (SELECT ...); nothing was changed")
            columns = list(result.keys())
            rows = result.all()
        return _plain_numbers(pd.DataFrame.from_records(rows, columns=columns))

    def _ensure_schema_portably(self) -> None:
        """ensure_schema on the other databases, in statements every one has (no IF NOT EXISTS: MySQL has none
        for indexes); a table or index a concurrent run created first is taken as it is."""
        with self._writing() as connection:
            try:
                DDS_JOBS.create(connection, checkfirst=True)  # with its indexes
            except sa.exc.DBAPIError:
                if not sa.inspect(connection).has_table(TABLE_NAME):
                    raise
            present = {index["name"] for index in sa.inspect(connection).get_indexes(TABLE_NAME)}
            for index in sorted(DDS_JOBS.indexes, key=lambda ix: ix.name):
                if index.name not in present:
                    index.create(connection)
            _check_stored_columns(connection)
            ensure_ledger_table(connection)
        update_views_where_possible(self._engine)
        self._schema_ready = True

    def _ensure_schema_once(self) -> None:
        if not self._schema_ready:
            self.ensure_schema()

    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A connection in a write transaction (on SQLite holding the write lock from its start)."""
        with self._engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            with connection.begin():
                yield connection

    def _writing_then(self, then: Callable[[sa.Connection], None]) -> Callable[[], AbstractContextManager]:
        """Like _writing, with ``then`` run on the connection at the end of the block, before the commit."""

        @contextmanager
        def writing() -> Iterator[sa.Connection]:
            with self._writing() as connection:
                yield connection
                then(connection)

        return writing

    def _reading(self) -> sa.Connection:
        self._ensure_schema_once()
        return self._engine.connect()

    def _filters(self, days: list[date], project_id: str | None) -> list[sa.ColumnElement[bool]]:
        conditions = [DDS_JOBS.c.created_date.in_(days)]
        if project_id is not None:
            conditions.append(DDS_JOBS.c.project_id == project_id)
        return conditions


def _check_stored_columns(connection: sa.Connection) -> None:
    stored = {column["name"] for column in sa.inspect(connection).get_columns(TABLE_NAME)}
    missing = [c.name for c in COLUMNS if c.name not in stored]
    if missing:
        raise RuntimeError(f"table {TABLE_NAME} exists without the columns {missing}: migrate it before syncing")


def _count_where(condition: sa.ColumnElement[bool], dialect: str) -> sa.ColumnElement[int]:
    """COUNT of the rows meeting ``condition``: aggregate FILTER where the database has it (SQLite, PostgreSQL),
    otherwise the CASE every database has (MySQL and MariaDB have no FILTER)."""
    if dialect in (SQLITE, POSTGRESQL):
        return sa.func.count().filter(condition)
    return sa.func.count(sa.case((condition, 1)))


def _plain_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its columns of Decimals (PostgreSQL's numeric, MariaDB's DECIMAL: a SUM of integers there) as
    int64 when every value is a whole number, else float64: what SQLite gives for the same SQL, and what pandas and
    Dagster's metadata compute on and show as numbers."""
    for position, (_, values) in enumerate(frame.items()):
        present = values.dropna()
        if values.dtype != object or present.empty or not all(isinstance(v, Decimal) for v in present):
            continue
        whole = len(present) == len(values) and all(v == v.to_integral_value() for v in present)
        frame.isetitem(position, values.astype("int64" if whole else "float64"))
    return frame


def _bind(name: str, value: object) -> sa.BindParameter:
    if isinstance(value, (list, tuple, set, frozenset)):
        return sa.bindparam(name, expanding=True)
    if isinstance(value, datetime):
        return sa.bindparam(name, type_=sa.DateTime(timezone=True))
    if isinstance(value, date):
        return sa.bindparam(name, type_=sa.Date())
    return sa.bindparam(name)


def _utc(value: object) -> object:
    # SQLite stores UTC without an offset, so a datetime is compared there as UTC wall time: convert aware ones,
    # and read naive ones as UTC on PostgreSQL too (rather than in the session's time zone).
    if isinstance(value, datetime):
        aware = value if value.utcoffset() is not None else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def _table_from_columns(values: list[tuple], specs: list[Column]) -> pa.Table:
    """The values of the ``specs`` columns of dds_jobs (timestamps and dates as text on SQLite, as objects on
    PostgreSQL) as a table of ``ARROW_SCHEMA``'s types, sorted by key (when the key columns are among them)."""
    fields = [ARROW_SCHEMA.field(column.name) for column in specs]
    table = pa.Table.from_arrays([_stored_values(column, f) for column, f in zip(values, fields)],
                                 schema=pa.schema(fields))
    if all(name in table.column_names for name in KEY_COLUMNS):
        table = table.sort_by([(name, "ascending") for name in KEY_COLUMNS])
    return table


@contextmanager
def _collection_paused() -> Iterator[None]:
    """The garbage collector held off (and then restored as it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _stored_values(values: tuple, field: pa.Field) -> pa.Array:
    try:
        return pa.array(values, type=field.type)
    except pa.ArrowTypeError:
        text = pa.array(values, type=pa.string())  # SQLite's text
    if field.type == pa.date32():
        return text.cast(pa.date32())
    try:
        # As upsert.py stores them: UTC wall time, 'YYYY-MM-DD HH:MM:SS.ffffff'.
        return text.cast(pa.timestamp("us")).cast(field.type)
    except pa.ArrowInvalid:
        # Rows written by another tool: any ISO 8601 form, with or without an offset (none means UTC).
        instants = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        return pa.array(instants, type=field.type)


def _checked_unknown(unknown: np.ndarray | None, rows: int) -> np.ndarray | None:
    """``unknown`` as the rows' masks (one unsigned integer each), or a ValueError saying what is wrong with it."""
    if unknown is None:
        return None
    if np.shape(unknown) != (rows,) or not np.issubdtype(np.asarray(unknown).dtype, np.integer):
        raise ValueError(f"unknown must hold one integer mask per row of the frame ({rows}), got {np.shape(unknown)}")
    return np.asarray(unknown, UNKNOWN_DTYPE)
