"""The analyst views: each file ``sql/views/<name>.sql`` holds one SELECT, created as the view ``<name>``.

The SELECTs are written in the SQL that SQLite, PostgreSQL and MariaDB share, so the same files serve every
warehouse; on another database a view whose SQL it does not understand is skipped with a warning. In them,
``CURRENT_DATE`` means today in UTC: each database is given its own way of saying it (PostgreSQL's and MariaDB's
own CURRENT_DATE is the day in the reading session's time zone).

A view is replaced only when its definition changed: the table ``dds_view_definitions`` holds, per view, the
SHA-256 of the definition last applied, and a view is applied again when its file says otherwise or the view is
missing. Replacing a view waits for the readers inside a transaction that selected from it; that wait is bounded
(VIEW_LOCK_TIMEOUT_SECONDS), and a view still busy then is left as it was, with a warning: the next run retries
it. So a reader's transaction left open (a BI tool, a notebook) never stalls a sync, and a sync with nothing to
change takes no lock a reader could queue behind.
"""

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from pipeline.records.columns import MYSQL_FAMILY, Kind, sql_type
from pipeline.sqlfiles import sql_folder
from pipeline.warehouse.engine import POSTGRESQL, create_table_when_missing

VIEWS_FOLDER = "views"
VIEW_DEFINITIONS_TABLE = "dds_view_definitions"
# How long replacing a view waits for the readers that hold it before the run goes on without it. Short: every
# reader arriving meanwhile queues behind the waiting replacement.
VIEW_LOCK_TIMEOUT_SECONDS = 2
_VIEW_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_CURRENT_DATE = re.compile(r"\bCURRENT_DATE\b", re.IGNORECASE)
_UTC_TODAY = {
    POSTGRESQL: "CAST(CURRENT_TIMESTAMP AT TIME ZONE 'UTC' AS DATE)",
    **{dialect: "UTC_DATE()" for dialect in MYSQL_FAMILY},
}  # SQLite's CURRENT_DATE is UTC already, as is any other database's we know nothing of, we hope.
logger = logging.getLogger(__name__)

VIEW_DEFINITIONS = sa.Table(
    VIEW_DEFINITIONS_TABLE,
    sa.MetaData(),
    sa.Column("view_name", sql_type(Kind.TEXT, keyed=True), primary_key=True, comment="an analyst view (key)"),
    sa.Column("definition_sha256", sa.String(64), nullable=False,
              comment="SHA-256 of the SELECT the pipeline last applied as the view, as this database was given it"),
    sa.Column("applied_at", sql_type(Kind.TIMESTAMP), nullable=False, comment="when it was applied, UTC"),
    comment="One row per analyst view: the definition last applied, so that a view is replaced only when it changed.",
)


@dataclass(frozen=True)
class View:
    name: str
    select: str

    def definition(self, dialect: str) -> str:
        """The SELECT as ``dialect`` is given it: CURRENT_DATE written as that database's UTC day."""
        utc_today = _UTC_TODAY.get(dialect)
        return self.select if utc_today is None else _CURRENT_DATE.sub(utc_today, self.select)


def load_views() -> list[View]:
    """The views of sql/views/, in file-name order (a view may use the views before it)."""
    views = []
    files = (path for path in sql_folder(VIEWS_FOLDER).iterdir() if path.name.endswith(".sql"))
    for path in sorted(files, key=lambda path: path.name):
        name = path.name.removesuffix(".sql")
        if not _VIEW_NAME.fullmatch(name):
            raise ValueError(f"{path.name}: a view file name must be a lower-case SQL identifier")
        select = path.read_text(encoding="utf-8").strip().rstrip(";").strip()
        if not select:
            raise ValueError(f"{path.name} is empty: it must hold the view's SELECT")
        views.append(View(name, select))
    return views


def update_views(connection: sa.Connection) -> list[str]:
    """On SQLite and PostgreSQL, within the connection's (schema) transaction: apply the views whose definition
    changed, each in a savepoint of its own, so that one left busy (a warning) leaves the others applied; the
    names applied. Where the database has transactional DDL, readers never see a view missing."""
    create_table_when_missing(connection, VIEW_DEFINITIONS)
    applied = []
    for view in _changed_views(connection):
        try:
            with connection.begin_nested(), _lock_timeout(connection):
                _apply(connection, view)
        except sa.exc.OperationalError as exc:
            if not _is_lock_timeout(exc):
                raise
            _warn_busy(view, connection.dialect.name)
        else:
            applied.append(view.name)
    return applied


def update_views_where_possible(engine: sa.Engine) -> list[str]:
    """On the databases without a fast path: apply each changed view in a transaction of its own, skipping with a
    one-line warning those the database refuses (the warehouse works without them) or that stay busy; the names
    applied.

    One transaction per view because MySQL and MariaDB commit each DDL statement at once anyway, and a refused
    statement must not undo the others. Where the database can replace a view in place, concurrent runs never
    see it missing, nor collide between one run's DROP and the other's CREATE.
    """
    with engine.begin() as connection:
        create_table_when_missing(connection, VIEW_DEFINITIONS)
        changed = _changed_views(connection)
    applied = []
    for view in changed:
        try:
            with engine.begin() as connection, _lock_timeout(connection):
                _apply(connection, view)
        except sa.exc.IntegrityError:
            applied.append(view.name)  # a concurrent run recorded the same definition first
        except sa.exc.DBAPIError as exc:
            if _is_lock_timeout(exc):
                _warn_busy(view, engine.dialect.name)
                continue
            reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
            logger.warning("view %s not created: %s refuses its SQL (%s)", view.name, engine.dialect.name, reason)
        else:
            applied.append(view.name)
    return applied


def _changed_views(connection: sa.Connection) -> list[View]:
    """The views whose file differs from the definition last applied, or that the database does not hold."""
    dialect = connection.dialect.name
    columns = VIEW_DEFINITIONS.c
    applied = dict(connection.execute(sa.select(columns.view_name, columns.definition_sha256)).all())
    # The catalog is read without taking a lock on any view: a busy view is only touched when it changed.
    present = set(sa.inspect(connection).get_view_names())
    return [view for view in load_views()
            if view.name not in present or applied.get(view.name) != _digest(view.definition(dialect))]


def _apply(connection: sa.Connection, view: View) -> None:
    """Create or replace ``view`` and record its definition, on the caller's transaction."""
    dialect = connection.dialect.name
    definition = view.definition(dialect)
    if dialect in MYSQL_FAMILY or dialect == POSTGRESQL:
        # In place: the views built on this one stay. PostgreSQL refuses when a column is renamed, retyped or
        # removed; the view is then dropped and created anew, in the same transaction.
        try:
            with _savepoint_if(connection, dialect == POSTGRESQL):
                _execute(connection, f"CREATE OR REPLACE VIEW {view.name} AS\n{definition}")
        except sa.exc.ProgrammingError:
            if dialect != POSTGRESQL:
                raise
            _drop_and_create(connection, view.name, definition)
    else:
        _drop_and_create(connection, view.name, definition)
    connection.execute(sa.delete(VIEW_DEFINITIONS).where(VIEW_DEFINITIONS.c.view_name == view.name))
    now = datetime.now(timezone.utc)
    connection.execute(sa.insert(VIEW_DEFINITIONS).values(
        view_name=view.name, definition_sha256=_digest(definition),
        # Only PostgreSQL has a zone-aware type; the others store UTC, as dds_jobs does.
        applied_at=now if dialect == POSTGRESQL else now.replace(tzinfo=None)))


def _drop_and_create(connection: sa.Connection, name: str, definition: str) -> None:
    connection.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
    _execute(connection, f"CREATE VIEW {name} AS\n{definition}")


@contextmanager
def _savepoint_if(connection: sa.Connection, wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    with connection.begin_nested():
        yield


@contextmanager
def _lock_timeout(connection: sa.Connection) -> Iterator[None]:
    """The connection's waits for a lock bounded by VIEW_LOCK_TIMEOUT_SECONDS, for the block."""
    dialect = connection.dialect.name
    if dialect == POSTGRESQL:
        # SET LOCAL: undone with the savepoint on failure, and ends with the transaction in any case.
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{VIEW_LOCK_TIMEOUT_SECONDS}s'")
        yield
    elif dialect in MYSQL_FAMILY:
        # A view's DDL waits for a metadata lock: lock_wait_timeout, in whole seconds. The connection goes back to
        # the pool afterwards, so the session's own value is restored.
        previous = connection.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar_one()
        connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {VIEW_LOCK_TIMEOUT_SECONDS}")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {int(previous)}")
    else:
        yield  # SQLite: a reader in WAL mode never blocks the writer


def _is_lock_timeout(exc: sa.exc.DBAPIError) -> bool:
    # PostgreSQL: SQLSTATE 55P03 (lock_not_available); MySQL and MariaDB: error 1205 (lock wait timeout).
    return getattr(exc.orig, "sqlstate", None) == "55P03" or (exc.orig.args[:1] == (1205,))


def _warn_busy(view: View, dialect: str) -> None:
    logger.warning("view %s not replaced: a reader's open transaction on %s holds it for more than %d s; its new "
                   "definition is applied by the next run", view.name, dialect, VIEW_LOCK_TIMEOUT_SECONDS)


def _digest(definition: str) -> str:
    return hashlib.sha256(definition.encode("utf-8")).hexdigest()


def _execute(connection: sa.Connection, statement: str) -> None:
    # Without parameters: drivers of the format paramstyle (psycopg, PyMySQL) would read a view's % (a modulo, a
    # LIKE pattern) as a placeholder.
    connection.exec_driver_sql(statement, execution_options={"no_parameters": True})
