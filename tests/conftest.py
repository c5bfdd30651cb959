"""Shared fixtures: real databases for the warehouse tests.

PostgreSQL tests run against the server named by ``DDS_TEST_POSTGRES_URL`` (default: the local trust-auth
server on 127.0.0.1:5432). Each test session gets a database of its own, dropped afterwards. Without a
server the tests skip with the reason, except under CI (``CI=true``), where a missing server is a failure.
"""

import os
import uuid

import pytest
import sqlalchemy as sa

POSTGRES_ADMIN_URL = os.environ.get(
    "DDS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required under CI but unusable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {reason}")


@pytest.fixture(scope="session")
def postgres_server_url():
    """URL of a fresh, empty PostgreSQL database for this test session."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"dds_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _postgres_unavailable(str(exc).splitlines()[0])
    url = admin.url.set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
