"""Loading the definitions (every `dg` command, every run's start) imports none of the libraries only runs use:
pandas, numpy, pyarrow, matplotlib load inside the steps that need them (issue 23 item 10)."""

import json
import os
import subprocess
import sys

from tests.support.paths import ROOT

RUN_ONLY = ("pandas", "numpy", "pyarrow", "matplotlib")
LOADED = ("import sys, json; import pipeline.definitions as d; assert d.defs() is not None; "
          f"print(json.dumps(sorted(m for m in {RUN_ONLY!r} if m in sys.modules)))")


def last_line_of(code: str, tmp_path, **env: str) -> str:
    """The last line ``code`` prints in a fresh interpreter, given only ``env``'s docs/configuration.md variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DDS_", "HUAWEICLOUD_", "DAGSTER_", "ARROW_"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**clean, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path),
                               "DDS_DATA_DIR": str(tmp_path / "data"), **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_definitions_load_without_the_libraries_of_runs(tmp_path):
    assert json.loads(last_line_of(LOADED, tmp_path)) == []
    # Nothing was written either: the data folder appears at the first run.
    assert not (tmp_path / "data").exists()


def test_an_s3_root_and_a_targets_file_are_checked_without_them(tmp_path):
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - {name: sg-prod, region: ap-southeast-1, project_id: proj-sg}\n")
    loaded = last_line_of(LOADED, tmp_path, DDS_PARQUET_ROOT="s3://bucket/dds", DDS_TARGETS_FILE=str(targets),
                          DDS_S3_ENDPOINT="http://127.0.0.1:9000")
    assert json.loads(loaded) == []


def test_arrow_still_gets_the_returning_allocator(tmp_path):
    probe = ("import pipeline.definitions as d; d.defs(); import pyarrow as pa; "
             "print(pa.default_memory_pool().backend_name)")
    assert last_line_of(probe, tmp_path) == "jemalloc"


# Every module of the package imported, with a setting that would fail the load: nothing is read, nothing changes
# (the libraries, which add warning filters of their own, imported first).
IMPORT_ALL = ("import importlib, json, os, pkgutil, sys, warnings, dagster, pandas, pyarrow, requests, pipeline; "
              "hook, env = sys.excepthook, dict(os.environ); "
              "filters = list(warnings.filters); "
              "names = [m.name for m in pkgutil.walk_packages(pipeline.__path__, 'pipeline.') "
              "]; [importlib.import_module(n) for n in names]; "
              "print(json.dumps([len(names), sys.excepthook is hook, dict(os.environ) == env, "
              "warnings.filters == filters]))")


def test_importing_any_module_reads_no_environment_and_changes_no_process_state(tmp_path):
    imported, same_hook, same_env, same_filters = json.loads(last_line_of(IMPORT_ALL, tmp_path,
                                                                          DDS_START_DATE="not-a-day"))
    assert imported > 80 and same_hook and same_env and same_filters
    # Loading them is what reads the deployment: the bad setting stops it in one line naming the variable.
    done = subprocess.run([sys.executable, "-c", "import pipeline.definitions as d; d.defs()"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "DDS_START_DATE": "not-a-day",
                               "DDS_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["configuration error: DDS_START_DATE='not-a-day' is not a date in "
                                                "the form YYYY-MM-DD"]
