"""Where things are: the project's root, the commands of this interpreter's venv, the browser tests' screenshots."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `dds-tasks`, `dagster`, `dagster-daemon`, `lint-imports`: the venv's own, whether or not it is activated.
BIN = Path(sys.executable).parent
# Screenshots and logs the browser tests keep (ignored by git: /tests/artifacts/).
ARTIFACTS = ROOT / "tests" / "artifacts"
# The project's SQL as analysts find it in the checkout (the package reads the same files through pipeline.sql).
SQL_DIR = ROOT / "sql"
