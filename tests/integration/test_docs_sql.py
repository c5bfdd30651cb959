"""Every SQL statement README.md and docs/*.md give an analyst runs as written on SQLite, PostgreSQL and MariaDB over
the same synced data, and gives the same answer on each (up to row order).

The statements are taken from the files' fenced blocks whose info string is ``sql``. A block that is not analyst SQL
on the warehouse says so after the language: ```` ```sql admin ```` (administration: CREATE ROLE, GRANT, ...)
and ```` ```sql duckdb ```` (DuckDB over the Parquet files) are left out.
"""

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.alerts.ledger import ensure_alerts_table
from pipeline.simulator import DdsSimulator
from pipeline.warehouse.store import Warehouse
from tests.support.simulator_http import config
from tests.support.sync_helpers import run_sync

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_ANALYST_SQL = {"admin", "duckdb"}
_FENCE = re.compile(r"^```sql([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.MULTILINE)
# The days the documents' examples name (November 2026), synced by a simulator whose clock is just after them.
NOW = datetime(2026, 11, 9, 6, 0, tzinfo=timezone.utc)
# The last, the simulator's today, is synced but not complete: the coverage examples have a gap to show.
DAYS = [date(2026, 11, 1) + timedelta(days=n) for n in range(9)]
_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?")


def analyst_statements() -> list[tuple[str, str]]:
    """(where, statement) of every statement of the documents' analyst SQL blocks, comments left in."""
    found = []
    for document in DOCUMENTS:
        for block in _FENCE.finditer(document.read_text(encoding="utf-8")):
            if set(block.group(1).split()) & NOT_ANALYST_SQL:
                continue
            line = document.read_text(encoding="utf-8")[:block.start()].count("\n") + 2
            for statement in _STATEMENT_END.split(block.group(2)):
                if _without_comments(statement).strip():
                    found.append((f"{document.relative_to(ROOT)}:{line}", statement.strip()))
    return found


def _without_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


STATEMENTS = analyst_statements()


@pytest.fixture
def synced_urls(sqlite_url, postgres_url, mariadb_url) -> dict[str, str]:
    """The same jobs synced into SQLite, PostgreSQL and MariaDB (each emptied first), each by a run of its own."""
    urls = {"sqlite": sqlite_url, "postgresql": postgres_url, "mariadb": mariadb_url}
    with DdsSimulator(config(now=NOW, seed=10, jobs_per_day=60), port=0) as simulator:
        inserted = {database: run_sync(url, simulator, DAYS, NOW) for database, url in urls.items()}
    assert len(set(inserted.values())) == 1 and inserted["sqlite"] > 0
    for url in urls.values():
        # The alerts' ledger, as the first materialization of dds_jobs_alerts makes it (docs/alerts.md queries it).
        warehouse = Warehouse(url)
        ensure_alerts_table(warehouse)
        warehouse.dispose()
    return urls


def answer(url: str, statement: str) -> list[tuple]:
    """The rows of ``statement`` run as written (no parameters), each value as the same Python value whatever the
    database's driver returned, sorted."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(statement, execution_options={"no_parameters": True}).all()
    finally:
        engine.dispose()
    return sorted((tuple(_plain(value) for value in row) for row in rows), key=repr)


def answers_of_one_utc_day(urls: dict[str, str], statement: str) -> dict[str, list[tuple]]:
    """Each database's answer to ``statement``, all given on one UTC day (the coverage view's ages count from it):
    asked again, once, when UTC midnight fell between the first and the last."""
    for _ in range(2):
        day = datetime.now(timezone.utc).date()
        answers = {database: answer(url, statement) for database, url in urls.items()}
        if datetime.now(timezone.utc).date() == day:
            break
    return answers


def _plain(value: object) -> object:
    if isinstance(value, str) and _TIMESTAMP_TEXT.fullmatch(value):  # SQLite's timestamps, UTC
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
        return utc.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (Decimal, float)) and not isinstance(value, bool):
        return int(value) if value == int(value) else round(float(value), 9)
    return value


def test_the_documents_give_analyst_sql_to_check():
    assert len(STATEMENTS) >= 8, STATEMENTS


@pytest.mark.parametrize("statement", [statement for _, statement in STATEMENTS],
                         ids=[where for where, _ in STATEMENTS])
def test_the_statement_runs_as_written_and_answers_the_same_on_every_database(synced_urls, statement):
    answers = answers_of_one_utc_day(synced_urls, statement)
    assert answers["postgresql"] == answers["sqlite"]
    assert answers["mariadb"] == answers["sqlite"]
