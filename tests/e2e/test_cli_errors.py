"""Configuration errors met by a run started from the command line, tried as a user does: `dagster asset materialize`
and `dg launch` from the checkout. The last thing printed is the one line naming the problem and the variable to
set; Dagster's frames stay out of the console (the run's event log keeps them)."""

import socket
import subprocess
from collections.abc import Iterator

import pytest

from pipeline.simulator import DdsSimulator, SimulatorConfig
from tests.support.dagster_helpers import env_without_secrets, last_day, pipeline_env
from tests.support.paths import BIN, ROOT

# More than the run's own lines (start, resources, the step, its skipped checks, the failure): far fewer than the
# hundreds of lines of tracebacks the console printed before.
MOST_LINES = 25


def commands(day: str) -> dict[str, list[str]]:
    return {
        "dagster": [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions",
                    "--select", "dds_jobs,dds_jobs_parquet", "--partition", day],
        "dg": [str(BIN / "dg"), "launch", "--assets", "dds_jobs,dds_jobs_parquet", "--partition", day],
    }


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port of 127.0.0.1 bound by this process but not listening: a connection to it is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


def run_cli(tmp_path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    home = tmp_path / "dagster-home"
    home.mkdir()
    # A configured Dagster home, as a deployment has (without one Dagster prints its welcome and telemetry notes).
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.run(commands(last_day().isoformat())[command], cwd=ROOT,
                          env={**env, "DAGSTER_HOME": str(home)}, capture_output=True, text=True, timeout=240)


def last_line_and_count(done: subprocess.CompletedProcess) -> tuple[str, int]:
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    # Printed last, on stderr: the whole output ends with it whichever stream is read first.
    return done.stderr.strip().splitlines()[-1], len(lines)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["dagster", "dg"])
def test_a_missing_project_id_is_the_last_line_of_the_command(tmp_path, command):
    with DdsSimulator(SimulatorConfig(jobs_per_day=5, token="t"), port=0) as sim:
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data")}
        del env["DDS_PROJECT_ID"]
        done = run_cli(tmp_path, command, env)
        assert sim.requests == []
    last, count = last_line_and_count(done)
    assert done.returncode != 0
    assert last == "configuration error: DDS_PROJECT_ID is not set: the project id of the tenant in the region is " \
                   "required", done.stdout + done.stderr
    assert count <= MOST_LINES and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    print(f"\n{command}: {count} lines, the last: {last}")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["dagster", "dg"])
def test_an_unreachable_warehouse_is_the_last_line_of_the_command_naming_its_host_never_its_password(
    tmp_path, command, closed_port
):
    with DdsSimulator(SimulatorConfig(jobs_per_day=5, token="t"), port=0) as sim:
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data"),
               "DDS_WAREHOUSE_URL": f"postgresql+psycopg://etl:s3cret-pw@127.0.0.1:{closed_port}/dds"}
        done = run_cli(tmp_path, command, env)
    last, count = last_line_and_count(done)
    assert done.returncode != 0
    assert last.startswith(f"configuration error: DDS_WAREHOUSE_URL: cannot open the warehouse, the postgresql "
                           f"server 127.0.0.1:{closed_port}, database dds: "), last
    assert "Connection refused" in last
    assert last.endswith("; start the database, or set it to one this process can reach")
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert count <= MOST_LINES and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    print(f"\n{command}: {count} lines, the last: {last}")
