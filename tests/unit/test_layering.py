"""The package's layering (pyproject.toml, [tool.importlinter]) holds, and a wrong import breaks it."""

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.paths import BIN, ROOT

LINT = BIN / "lint-imports"


def lint(tree: Path) -> subprocess.CompletedProcess:
    # The tree's own copy of the package comes first on the path, before the installed one.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_every_layer_imports_only_those_below_it():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "7 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_layering(tmp_path):
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    schema = tmp_path / "pipeline" / "records" / "schema.py"
    # The vocabulary at the ground reaching up into the Dagster wiring.
    schema.write_text(schema.read_text() + "\nfrom pipeline.defs.sync import assets  # noqa: E402, F401\n")
    done = lint(tmp_path)
    assert done.returncode == 1
    assert "Layers look only down BROKEN" in done.stdout and "pipeline.records.schema -> pipeline.defs.sync.assets" in done.stdout


def test_an_area_of_defs_importing_another_breaks_their_independence(tmp_path):
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    verify = tmp_path / "pipeline" / "defs" / "snapshots" / "verify_job.py"
    # What verify_job.py once did: take the pool's name from the sync area's assets.
    verify.write_text(verify.read_text() + "\nfrom pipeline.defs.sync.assets import STORED_MATCHES_API  # noqa: E402, F401\n")
    done = lint(tmp_path)
    assert done.returncode == 1
    assert "Each area of defs/ wires its own domain, never another area's defs BROKEN" in done.stdout
