"""The commands users type, run as processes: the CONTRACT.md materialize command and ``dds-tasks demo``."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.storage.warehouse import Warehouse
from tests.dagster_helpers import TOKEN, env_without_secrets, expected_jobs, pipeline_env, yesterday

BIN = Path(sys.executable).parent


def run(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_contract_materialize_command_syncs_a_day_range(tmp_path):
    last = yesterday()
    first = last - timedelta(days=3)
    (tmp_path / "dagster_home").mkdir()
    with DdsSimulator(SimulatorConfig(seed=5, jobs_per_day=80, token=TOKEN, history_days=40), port=0) as sim:
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data"),
               "DAGSTER_HOME": str(tmp_path / "dagster_home")}
        done = run([str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions",
                    "--select", "dds_jobs,dds_jobs_parquet",
                    "--partition-range", f"{first.isoformat()}...{last.isoformat()}"], env)
        assert done.returncode == 0, done.stderr[-3000:]
        want = expected_jobs(sim, first, last)
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}")
    ids = warehouse.query("SELECT id FROM dds_jobs")["id"]
    warehouse.dispose()
    assert sorted(ids) == sorted(want)
    days = sorted(p.name for p in (tmp_path / "data" / "parquet" / "dds_jobs").iterdir())
    assert days == [f"created_date={(first + timedelta(days=n)).isoformat()}" for n in range(4)]
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.slow
def test_dds_tasks_demo_runs_end_to_end_and_twice_safely(tmp_path):
    env = {**env_without_secrets(), "DDS_DATA_DIR": str(tmp_path / "data")}
    first = run([str(BIN / "dds-tasks"), "demo"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    for expected in ("Jobs per status:", "Task names that fail most:", "Slowest tasks:", "warehouse.db",
                     "dagster dev", "asset checks: 5 of 5 passed"):
        assert expected in first.stdout
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}")
    count = warehouse.query("SELECT COUNT(*) AS n FROM dds_jobs")["n"].iloc[0]
    assert count > 0
    second = run([str(BIN / "dds-tasks"), "demo"], env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert warehouse.query("SELECT COUNT(*) AS n FROM dds_jobs")["n"].iloc[0] == count
    warehouse.dispose()


def test_a_bad_setting_is_one_clear_line_before_anything_runs(tmp_path):
    env = {**env_without_secrets(), "DDS_DATA_DIR": str(tmp_path / "data"), "DDS_START_DATE": "yesterday"}
    done = run([str(BIN / "dds-tasks"), "demo"], env)
    assert done.returncode == 2
    assert done.stderr.strip() == ("dds-tasks: configuration error: DDS_START_DATE='yesterday' is not a date "
                                   "in the form YYYY-MM-DD")
    assert not (tmp_path / "data").exists()
