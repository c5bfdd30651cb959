"""The commands users type, run as processes: docs/dagster.md's materialize command, and what Dagster's CLI shows of
an error a user can fix (``dds-tasks demo`` has tests/e2e/test_demo.py)."""

import subprocess
from datetime import timedelta

import pytest

from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import (
    TOKEN,
    env_without_secrets,
    expected_jobs,
    pipeline_env,
    yesterday,
)
from tests.support.paths import BIN


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


def dagster_output(args: list[str], env: dict[str, str]) -> list[str]:
    """The lines of a dagster command's stdout and stderr, without Dagster's own warnings and notices."""
    done = run([str(BIN / "dagster"), *args], env)
    assert done.returncode != 0
    return [line for line in (done.stdout + done.stderr).splitlines()
            if line.strip() and "Warning" not in line and "return callback" not in line and "dagster.yaml" not in line]


@pytest.mark.slow
def test_a_configuration_error_met_by_a_run_is_its_one_line_first(tmp_path):
    env = {**env_without_secrets(), "DDS_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path)}
    lines = dagster_output(["asset", "materialize", "-m", "pipeline.definitions", "--select",
                            "dds_jobs,dds_jobs_parquet", "--partition", yesterday().isoformat()], env)
    message = "configuration error: DDS_PROJECT_ID is not set: the project id of the tenant in the region is required"
    # The run's log says it on its own line, before the step fails; the failure's line says it again, without
    # Dagster's frames, and the command's last line is it (tests/e2e/test_cli_errors.py).
    logged = next(i for i, line in enumerate(lines) if line.endswith(f"- dds_jobs - {message}"))
    failed = next(i for i, line in enumerate(lines) if "STEP_FAILURE" in line)
    assert logged < failed and lines[failed].endswith(f'Execution of step "dds_jobs" failed: {message}')
    assert lines[-1] == message and not any("Stack Trace" in line for line in lines)
    assert not any("ConfigError" in line or "DagsterExecutionStepExecutionError" in line for line in lines)
    assert not (tmp_path / "data").exists()


def test_a_configuration_error_met_while_loading_the_definitions_is_one_line(tmp_path):
    env = {**env_without_secrets(), "DDS_DATA_DIR": str(tmp_path / "data"), "DDS_START_DATE": "yesterday",
           "DAGSTER_HOME": str(tmp_path)}
    lines = dagster_output(["asset", "list", "-m", "pipeline.definitions"], env)
    assert lines == ["configuration error: DDS_START_DATE='yesterday' is not a date in the form YYYY-MM-DD"]
