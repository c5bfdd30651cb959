"""Shared fixtures: the real databases of the warehouse tests, and moto's S3 server.

The warehouse's databases are one parameter list, DATABASES: SQLite, PostgreSQL (marked ``postgres``) and MariaDB
(marked ``mariadb``, the generic upsert path). The ``warehouse_url`` and ``warehouse`` fixtures run a test on each;
``-m "not mariadb"`` or ``-m "not postgres"`` leaves a server out.

PostgreSQL tests run against the server named by ``DDS_TEST_POSTGRES_URL`` (default: the local trust-auth
server on 127.0.0.1:5432), MariaDB tests against ``DDS_TEST_MARIADB_URL`` (default: root without password on
127.0.0.1:3306, through PyMySQL). Each test session gets a database of its own on each, dropped afterwards.
Without a server the tests skip with the reason, except under CI (``CI=true``), where a missing server is a
failure.
"""

import os
import signal
import uuid
from collections.abc import Iterator

import pyarrow.fs as pafs
import pytest
import sqlalchemy as sa
from hypothesis import settings
from moto.server import ThreadedMotoServer

from pipeline.snapshots.s3 import S3Options
from pipeline.snapshots.store import ParquetStore
from tests.support.days import pinned_last_day
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, s3_env
from tests.support.warehouse_helpers import ready_warehouse

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


# The marker of the tests that need each server, whether they take it as a parameter of DATABASES or by name.
SERVER_MARKS = {"postgres_server_url": pytest.mark.postgres, "mariadb_server_url": pytest.mark.mariadb}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, mark in SERVER_MARKS.items():
            if fixture in item.fixturenames:
                item.add_marker(mark)


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


@pytest.fixture(autouse=True)
def _one_last_day_per_test() -> Iterator[None]:
    """The days a test syncs (tests/support/days.py) stay the same for the whole test, across midnight too."""
    with pinned_last_day():
        yield


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


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


# The warehouse's databases, each with the fixture of its URL: SQLite and PostgreSQL have fast upsert paths of
# their own, MariaDB takes the generic one.
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", marks=pytest.mark.postgres, id="postgresql"),
    pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb"),
]
URL_FIXTURES = {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mariadb": "mariadb_url"}
FAST_PATH_DATABASES = [database for database in DATABASES if database.values[0] in ("sqlite", "postgresql")]


@pytest.fixture(params=DATABASES)
def warehouse_url(request):
    """A test taking it runs on SQLite, on PostgreSQL and on MariaDB."""
    return request.getfixturevalue(URL_FIXTURES[request.param])


@pytest.fixture(params=FAST_PATH_DATABASES)
def fast_path_warehouse_url(request):
    """The databases of DATABASES with an upsert path of their own: SQLite and PostgreSQL."""
    return request.getfixturevalue(URL_FIXTURES[request.param])


@pytest.fixture
def warehouse(warehouse_url):
    """The warehouse on each database of DATABASES, with its table, indexes and views."""
    yield from ready_warehouse(warehouse_url)


# --- S3-compatible object storage: moto's server on loopback ---------------------------------------------------

@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint) -> str:
    """A new, empty bucket on the S3 server."""
    name = f"dds-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1", scheme="http",
                      endpoint_override=s3_endpoint.removeprefix("http://"), allow_bucket_creation=True
                      ).create_dir(name)
    return name


@pytest.fixture
def s3_store(s3_endpoint, bucket) -> ParquetStore:
    """Parquet snapshots under a prefix of a new bucket."""
    return ParquetStore(f"s3://{bucket}/snapshots/", s3=S3Options.from_variables(s3_env(s3_endpoint)))
