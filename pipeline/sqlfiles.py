"""The SQL kept in the project's top-level ``sql/`` folder (views, checks, example queries)."""

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@cache
def read_sql(relative_path: str) -> str:
    """The text of ``sql/<relative_path>``; a clear error when the project is not installed from its source tree."""
    path = SQL_DIR / relative_path
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: install the project from its source tree (pip install -e .) so sql/ is found"
        )
    return path.read_text(encoding="utf-8")
