"""The SQL kept in the project's top-level ``sql/`` folder (views, checks, the report's and analysts' queries).

``sql/`` stays at the top level, where analysts find it; ``pipeline/sql`` links to it, so the built wheel carries
its files as the package data of ``pipeline.sql`` and a non-editable install reads them through
``importlib.resources`` exactly as a checkout does.
"""

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

SQL_PACKAGE = "pipeline.sql"


def sql_folder(folder: str) -> Traversable:
    """The folder ``sql/<folder>`` (``views``, ``checks``, ``queries``, ``report``) as installed."""
    path = files(SQL_PACKAGE).joinpath(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"sql/{folder} is missing from the installed package {SQL_PACKAGE}: reinstall the project")
    return path


@cache
def read_sql(relative_path: str) -> str:
    """The text of ``sql/<relative_path>``, such as ``checks/jobs_by_day.sql``."""
    folder, _, name = relative_path.rpartition("/")
    path = sql_folder(folder).joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"sql/{relative_path} is missing from the installed package {SQL_PACKAGE}")
    return path.read_text(encoding="utf-8")
