"""The built wheel installed into a new venv and run outside the checkout (issue 23 item 3): it carries sql/ as
package data, loads the definitions and runs the demo, with nothing read from the source tree.

The new venv holds only the wheel (``--no-deps``); its dependencies come from this venv's site-packages through a
``.pth`` line, which adds the folder to the path without running its ``.pth`` files: the editable finder of this
project (``__editable__...``) is never loaded, so ``pipeline`` can only be the installed copy.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

SOURCES = ("pipeline", "sql", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The python of a new venv with the project's wheel installed in it."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        # A copy, so that the build writes nothing into the checkout; pipeline/sql stays a link to ../sql.
        (shutil.copytree(ROOT / name, source / name, symlinks=True,
                         ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
         if (ROOT / name).is_dir() else shutil.copy2(ROOT / name, source / name))
    built = base / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(built), str(source)],
        cwd=base)
    (wheel,) = built.glob("dds_task_sync-*.whl")
    target = base / "venv"
    venv.create(target, with_pip=False, symlinks=True)
    python = target / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        cwd=base)
    site_packages = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=base).strip())
    (site_packages / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env or outside_env(cwd), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{command[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def outside_env(home: Path) -> dict[str, str]:
    """The environment with nothing pointing into the checkout and no DDS_* setting of the caller's."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DDS_", "DAGSTER_")) and key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(DDS_DATA_DIR=str(home / "data"), DAGSTER_HOME=str(home / "dagster_home"), PYTHONNOUSERSITE="1")
    (home / "dagster_home").mkdir(exist_ok=True)
    return env


def test_the_installed_package_is_the_wheel_and_reads_its_sql(installed, tmp_path):
    shown = run([str(installed), "-c", (
        "import pipeline, pipeline.sqlfiles as s; "
        "text = s.read_sql('views/dds_jobs_daily_status.sql'); "
        "print(pipeline.__file__); print(s.sql_folder('views')); print(len(text))")], cwd=tmp_path).splitlines()
    venv_root = installed.parent.parent
    package, views, length = Path(shown[0]), Path(shown[1]), int(shown[2])
    assert package.is_relative_to(venv_root) and not package.is_relative_to(ROOT), package
    assert views.is_relative_to(venv_root) and not views.is_symlink(), views
    assert length == len((ROOT / "sql" / "views" / "dds_jobs_daily_status.sql").read_text(encoding="utf-8"))


def test_the_installed_definitions_validate_outside_the_checkout(installed, tmp_path):
    output = run([str(installed), "-m", "dagster", "definitions", "validate", "-m", "pipeline.definitions"],
                 cwd=tmp_path)
    assert "Validation successful" in output, output[-2000:]


def test_the_installed_demo_runs_outside_the_checkout(installed, tmp_path):
    demo_dir = tmp_path / "demo"
    run([str(installed.parent / "dds-tasks"), "demo", "--dir", str(demo_dir)], cwd=tmp_path)
    assert any(demo_dir.rglob("*.parquet")), sorted(str(p) for p in demo_dir.rglob("*"))[:20]
