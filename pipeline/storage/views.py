"""The analyst views: each file ``sql/views/<name>.sql`` holds one SELECT, created as the view ``<name>``.

The SELECTs are written in the SQL that SQLite and PostgreSQL share, so the same files serve both warehouses.
"""

import re
from dataclasses import dataclass

import sqlalchemy as sa

from pipeline.sqlfiles import SQL_DIR

VIEWS_DIR = SQL_DIR / "views"
_VIEW_NAME = re.compile(r"[a-z_][a-z0-9_]*")


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
        connection.exec_driver_sql(f"CREATE VIEW {view.name} AS\n{view.select}")
    return [view.name for view in views]
