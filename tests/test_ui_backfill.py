"""The UI path for real: ``dagster dev`` against the simulator, a multi-day backfill launched through the
webserver's GraphQL API (what the UI's "Launch backfill" button sends), carried out by the daemon."""

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.storage.warehouse import Warehouse
from tests.dagster_helpers import TOKEN, env_without_secrets, expected_jobs, pipeline_env, yesterday

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } ... on PythonError { message } }
}"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(url: str, query: str, variables: dict) -> dict:
    answer = requests.post(url, json={"query": query, "variables": variables}, timeout=30)
    answer.raise_for_status()
    return answer.json()["data"]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.slow
def test_a_backfill_launched_through_the_webserver_fills_the_warehouse(tmp_path):
    last = yesterday()
    days = [(last - timedelta(days=n)).isoformat() for n in range(2, -1, -1)]
    home = tmp_path / "dagster_home"
    home.mkdir()
    port = free_port()
    with DdsSimulator(SimulatorConfig(seed=3, jobs_per_day=50, token=TOKEN, history_days=40), port=0) as sim:
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data"), "DAGSTER_HOME": str(home)}
        log = open(tmp_path / "dagster_dev.log", "w")
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/graphql"

            def ready():
                try:
                    return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
                except requests.ConnectionError:
                    return False

            wait_until(ready, 120, "dagster dev to serve")
            params = {"partitionNames": days, "fromFailure": False,
                      "assetSelection": [{"path": ["dds_jobs"]}, {"path": ["dds_jobs_parquet"]}]}
            launched = wait_until(lambda: _launch(url, params), 60, "the code location to load")
            backfill_id = launched["backfillId"]
            status = wait_until(
                lambda: (s := graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"].get("status"))
                in DONE and s, 240, "the daemon to finish the backfill")
            assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (tmp_path / "dagster_dev.log").read_text()[-3000:]
            want = expected_jobs(sim, last - timedelta(days=2), last)
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)
            log.close()
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}")
    ids = warehouse.query("SELECT id FROM dds_jobs")["id"]
    warehouse.dispose()
    assert sorted(ids) == sorted(want)
    assert TOKEN not in (tmp_path / "dagster_dev.log").read_text()


def _launch(url: str, params: dict):
    answer = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if answer["__typename"] == "LaunchBackfillSuccess":
        return answer
    if "not found" in str(answer.get("message", "")).lower():
        return None
    raise AssertionError(f"backfill refused: {answer}")
