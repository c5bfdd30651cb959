"""Shared fixtures: real databases for the warehouse tests.

PostgreSQL tests run against the server named by ``DDS_TEST_POSTGRES_URL`` (default: the local trust-auth
server on 127.0.0.1:5432), MariaDB tests (the generic upsert path) against ``DDS_TEST_MARIADB_URL`` (default:
root without password on 127.0.0.1:3306, through PyMySQL). Each test session gets a database of its own on
each, dropped afterwards. Without a server the tests skip with the reason, except under CI (``CI=true``),
where a missing server is a failure.
"""

import os
import signal
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import settings

# Property tests draw the same examples on every run: a failure found once is found again, and no run fails on a
# draw the previous one did not make. A deliberate search for new examples: HYPOTHESIS_PROFILE=explore.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def pytest_configure(config):
    # A suite started in the background (nohup pytest &) inherits SIGINT ignored, and every child would inherit it
    # in turn: the tests that stop a server with Ctrl-C's signal would leave it running. A handled signal is reset
    # to its default across exec, so the children get Ctrl-C back (tests/support/processes.py stops them by group).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

POSTGRES_ADMIN_URL = os.environ.get(
    "DDS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_ADMIN_URL = os.environ.get("DDS_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _server_unavailable(server: str, url: str, reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{server} is required under CI but unusable: {reason}", pytrace=False)
    pytest.skip(f"{server} not reachable at {url}: {reason}")


def _session_database(server: str, admin_url: str, create: str, drop: str, **engine_options) -> Iterator[str]:
    """The URL of a database of this test session's own on the server (``create`` and ``drop``: SQL with
    ``{name}``), dropped afterwards; a skip (or, under CI, a failure) when the server or its driver is missing."""
    try:
        admin = sa.create_engine(admin_url, **engine_options)
    except ImportError as exc:  # PyMySQL comes with the dev extra
        _server_unavailable(server, admin_url, f"its driver is not installed ({exc})")
    name = f"dds_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(create.format(name=name)))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _server_unavailable(server, admin_url, str(exc).splitlines()[0])
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(drop.format(name=name)))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_server_url():
    """URL of a fresh, empty PostgreSQL database for this test session."""
    yield from _session_database("PostgreSQL", POSTGRES_ADMIN_URL, 'CREATE DATABASE "{name}"',
                                 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', isolation_level="AUTOCOMMIT")


@pytest.fixture
def postgres_url(postgres_server_url):
    """The session's PostgreSQL database, emptied of tables and views before each test."""
    engine = sa.create_engine(postgres_server_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return postgres_server_url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path):
    """Each warehouse test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def mariadb_server_url():
    """URL of a database of this test session's own on the MariaDB (or MySQL) server, dropped afterwards."""
    yield from _session_database("MariaDB", MARIADB_ADMIN_URL, "CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
                                 "DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def mariadb_url(mariadb_server_url):
    """The session's MariaDB database, emptied of tables, views and triggers before each test."""
    engine = sa.create_engine(mariadb_server_url)
    name = engine.url.database
    with engine.connect() as conn:
        # A connection a failed test left open would make the DROP wait for its locks: a year, by default.
        conn.execute(sa.text("SET SESSION lock_wait_timeout = 30"))
        conn.execute(sa.text(f"DROP DATABASE `{name}`"))
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    engine.dispose()
    return mariadb_server_url
