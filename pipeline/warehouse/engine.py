"""Warehouse URLs and engines: which databases can be opened, and SQLite set up for concurrent runs."""

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

from pipeline.records.columns import MYSQL_FAMILY

SQLITE, POSTGRESQL = "sqlite", "postgresql"
# Dialect names of MySQL and of MariaDB (which SQLAlchemy names "mariadb" only in a mariadb:// URL).
# SQLite makes a second writer wait this long for the first instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Page cache of a connection: SQLite's default 2 MB thrashes on the indexes during a bulk upsert, which gets the
# large cache for its own duration (upsert.py); reads keep the small one, so a run does not hold 64 MB per connection.
SQLITE_CACHE_KIB = 8 * 1024
SQLITE_LOAD_CACHE_KIB = 64 * 1024
# Execution option naming a connection that will write: SQLite then takes the write lock at BEGIN (IMMEDIATE),
# so two runs queue up instead of failing when a read-then-write transaction cannot be upgraded.
WRITE = "dds_write"
_EXAMPLES = "sqlite:///data/warehouse.db or postgresql+psycopg://user@host/db"


def parse_warehouse_url(url: object) -> URL:
    """The SQLAlchemy URL of a warehouse this environment can open; ValueError (one line, never showing a
    password) for a malformed URL, a database without a SQLAlchemy dialect, or a driver not installed."""
    if isinstance(url, URL):
        parsed = url
    elif isinstance(url, str) and url.strip():
        try:
            parsed = make_url(url.strip())
        except (sa.exc.ArgumentError, ValueError):
            raise ValueError(f"warehouse URL is malformed: expected a SQLAlchemy URL such as {_EXAMPLES}") from None
    else:
        raise ValueError(f"warehouse URL must be a non-empty string such as {_EXAMPLES}, got {type(url).__name__}")
    unsupported = f"unsupported warehouse database {parsed.drivername!r}"
    if parsed.get_backend_name() == "postgres":  # the old alias, still common in hosting providers' URLs
        parsed = parsed.set(drivername="postgresql" + parsed.drivername.removeprefix("postgres"))
    try:
        dialect = parsed.get_dialect()
    except sa.exc.NoSuchModuleError:
        raise ValueError(f"{unsupported}: SQLAlchemy has no dialect of that name") from None
    backend, driver = parsed.get_backend_name(), dialect.driver
    # SQLite and PostgreSQL have fast paths written for one driver each (sqlite3's executemany, psycopg's COPY).
    if backend == SQLITE:
        if driver == "pysqlite":
            return parsed.set(drivername=SQLITE)
        raise ValueError(f"{unsupported}: use SQLite through Python's own driver, e.g. sqlite:///data/warehouse.db")
    if backend == POSTGRESQL:
        if driver == "psycopg":
            return parsed.set(drivername="postgresql+psycopg")
        raise ValueError(f"{unsupported}: use PostgreSQL through psycopg 3, e.g. postgresql+psycopg://user@host/db")
    # Any other database goes through the generic path, given a synchronous driver that is installed.
    if dialect.is_async:
        raise ValueError(f"{unsupported}: an asyncio driver; name a synchronous one, e.g. mysql+pymysql://")
    try:
        dialect.import_dbapi()
    except ImportError:
        raise ValueError(
            f"{unsupported}: its driver {driver!r} is not installed (install it, or name an installed driver "
            "in the URL as database+driver://)"
        ) from None
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def create_warehouse_engine(url: URL) -> Engine:
    """An engine for a URL from parse_warehouse_url; for a SQLite file its folder is created first."""
    if url.get_backend_name() in MYSQL_FAMILY:
        # READ COMMITTED: under InnoDB's default REPEATABLE READ the generic upsert's lookup (FOR UPDATE) locks the
        # gaps where absent keys would go, and two loads of the same new jobs deadlock on each other's gaps; here
        # the second waits for the first's inserts and is retried once they are committed (generic_upsert.py).
        return sa.create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED")
    if url.get_backend_name() != SQLITE:
        return sa.create_engine(url, pool_pre_ping=True)
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection, _record) -> None:
    # pysqlite's own implicit BEGIN is deferred and skips SELECTs; we emit BEGIN ourselves (see _begin_...).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    # WAL: readers never block the writer nor the writer the readers; NORMAL sync is durable enough under WAL.
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    cursor.close()


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    writes = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def create_table_when_missing(connection: sa.Connection, table: sa.Table) -> None:
    """Create ``table`` when missing (within the caller's transaction); a table a concurrent run created first is
    taken as it is."""
    if connection.dialect.name in (SQLITE, POSTGRESQL, *MYSQL_FAMILY):
        connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
        return
    try:
        table.create(connection, checkfirst=True)
    except sa.exc.DBAPIError:
        if not sa.inspect(connection).has_table(table.name):
            raise
def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` is the database being out of reach (refused, unknown host, a server restarted under the
    run, a file that cannot be opened) rather than a statement it refused."""
    return isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError)) or bool(
        getattr(error, "connection_invalidated", False))


def database_place(url: URL) -> str:
    """Where a warehouse URL points, fit for any message: the SQLite file, or the server's host and port and the
    database (never a user or a password)."""
    if url.get_backend_name() == SQLITE:
        return f"the SQLite file {sqlite_file(url) or 'in memory'}"
    port = f":{url.port}" if url.port else ""
    database = url.database or "(default)"
    return f"the {url.get_backend_name()} server {url.host or 'localhost'}{port}, database {database}"


def driver_reason(error: BaseException) -> str:
    """The driver's own reason for a database error, one line (without SQLAlchemy's statement and parameters)."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0].strip() if lines else type(original).__name__
