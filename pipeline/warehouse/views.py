"""The analyst views: each file ``sql/views/<name>.sql`` holds one SELECT, created as the view ``<name>``.

The SELECTs are written in the SQL that SQLite, PostgreSQL and MariaDB share, so the same files serve every
warehouse; on another database a view whose SQL it does not understand is skipped with a warning.
"""

import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa

from pipeline.jobs.columns import MYSQL_FAMILY
from pipeline.sqlfiles import SQL_DIR

VIEWS_DIR = SQL_DIR / "views"
_VIEW_NAME = re.compile(r"[a-z_][a-z0-9_]*")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    name: str
    select: str


def load_views() -> list[View]:
    """The views of sql/views/, in file-name order (a view may use the views before it)."""
    if not VIEWS_DIR.is_dir():
        raise FileNotFoundError(f"{VIEWS_DIR} is missing: install the project from its source tree (pip install -e .)")
    views = []
    for path in sorted(VIEWS_DIR.glob("*.sql")):
        if not _VIEW_NAME.fullmatch(path.stem):
            raise ValueError(f"{path.name}: a view file name must be a lower-case SQL identifier")
        select = path.read_text(encoding="utf-8").strip().rstrip(";").strip()
        if not select:
            raise ValueError(f"{path.name} is empty: it must hold the view's SELECT")
        views.append(View(path.stem, select))
    return views


def recreate_views(connection: sa.Connection) -> list[str]:
    """Drop and create every view from its file, within the connection's transaction; the names created."""
    views = load_views()
    for view in reversed(views):
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {view.name}")
    for view in views:
        _execute(connection, f"CREATE VIEW {view.name} AS\n{view.select}")
    return [view.name for view in views]


def recreate_views_where_possible(engine: sa.Engine) -> list[str]:
    """On the databases without a fast path: (re)create each view in a transaction of its own, skipping with a
    one-line warning those the database refuses (the warehouse works without them); the names created.

    One transaction per view because MySQL and MariaDB commit each DDL statement at once anyway, and a refused
    statement must not undo the others. Where the database can replace a view in place, concurrent runs never
    see it missing, nor collide between one run's DROP and the other's CREATE.
    """
    created = []
    for view in load_views():
        try:
            with engine.begin() as connection:
                for statement in _replacing(view, engine.dialect.name):
                    _execute(connection, statement)
        except sa.exc.DBAPIError as exc:
            reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
            logger.warning("view %s not created: %s refuses its SQL (%s)", view.name, engine.dialect.name, reason)
        else:
            created.append(view.name)
    return created


def _execute(connection: sa.Connection, statement: str) -> None:
    # Without parameters: drivers of the format paramstyle (psycopg, PyMySQL) would read a view's % (a modulo, a
    # LIKE pattern) as a placeholder.
    connection.exec_driver_sql(statement, execution_options={"no_parameters": True})


def _replacing(view: View, dialect: str) -> list[str]:
    if dialect in MYSQL_FAMILY:
        return [f"CREATE OR REPLACE VIEW {view.name} AS\n{view.select}"]
    return [f"DROP VIEW IF EXISTS {view.name}", f"CREATE VIEW {view.name} AS\n{view.select}"]
