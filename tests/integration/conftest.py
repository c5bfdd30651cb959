"""Fixtures of the integration tests only: the simulator of its own tests, the warehouse paths that only these
tests take apart (MariaDB by name, SQLite forced onto the generic path), and a week of jobs for the snapshots."""

import pandas as pd
import pytest

import pipeline.warehouse.store as warehouse_module
from pipeline.simulator import DdsSimulator
from tests.support.records import synthetic_records
from tests.support.job_rows import DAY, rows
from tests.support.simulator_http import config
from tests.support.warehouse_helpers import ready_warehouse


@pytest.fixture
def sim():
    """The simulator as its own tests know it (tests/support/simulator_http.py), on a free loopback port."""
    with DdsSimulator(config(), port=0) as simulator:
        yield simulator


@pytest.fixture(params=["postgres_url", "mariadb_url"], ids=["postgresql", "mariadb"])
def server_warehouse_url(request):
    """PostgreSQL's and then MariaDB's URL: the warehouses on a server, whose sessions have locks and time zones."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def mariadb(mariadb_url):
    """The warehouse on MariaDB (the generic upsert path), for what only MariaDB has to show."""
    yield from ready_warehouse(mariadb_url)


@pytest.fixture
def generic_sqlite(sqlite_url, monkeypatch):
    """A SQLite warehouse forced onto the generic path (the one MariaDB takes): its rule checked without a server."""
    monkeypatch.delitem(warehouse_module._UPSERTS, "sqlite")
    yield from ready_warehouse(sqlite_url)


@pytest.fixture
def week() -> pd.DataFrame:
    """400 jobs created over the seven days from DAY."""
    return rows(synthetic_records(400, DAY, days=7, seed=3))
