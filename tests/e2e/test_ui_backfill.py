"""The UI path for real: ``dagster dev`` against the simulator, a multi-day backfill launched through the
webserver's GraphQL API (what the UI's "Launch backfill" button sends), carried out by the daemon."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import requests
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef

from pipeline.defs.snapshots.after_failure import PARQUET_JOB
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import (
    TOKEN,
    env_without_secrets,
    expected_jobs,
    pipeline_env,
    yesterday,
)
from tests.support.paths import ROOT
from tests.support.processes import dagster_dev, wait_until

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


def graphql(url: str, query: str, variables: dict) -> dict:
    answer = requests.post(url, json={"query": query, "variables": variables}, timeout=30)
    answer.raise_for_status()
    return answer.json()["data"]


def backfill(url: str, partitions: list[str], timeout: float = 240) -> str:
    """Launch a backfill of both assets over ``partitions`` as the UI's button does; its final status."""
    params = {"partitionNames": partitions, "fromFailure": False,
              "assetSelection": [{"path": ["dds_jobs"]}, {"path": ["dds_jobs_parquet"]}]}
    backfill_id = wait_until(lambda: _launch(url, params), 60, "the code location to load")["backfillId"]
    return wait_until(
        lambda: (s := graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"].get("status")) in DONE
        and s, timeout, "the daemon to finish the backfill")


def stored_ids(tmp_path: Path) -> pd.DataFrame:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}")
    try:
        return warehouse.query("SELECT project_id, id FROM dds_jobs")
    finally:
        warehouse.dispose()


@pytest.mark.slow
def test_a_backfill_launched_through_the_webserver_fills_the_warehouse(tmp_path):
    last = yesterday()
    days = [(last - timedelta(days=n)).isoformat() for n in range(2, -1, -1)]
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DdsSimulator(SimulatorConfig(seed=3, jobs_per_day=50, token=TOKEN, history_days=40), port=0) as sim:
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data"), "DAGSTER_HOME": str(home)}
        with dagster_dev(ROOT, env, tmp_path / "dagster_dev.log") as base:
            url = f"{base}/graphql"
            status = backfill(url, days)
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (tmp_path / "dagster_dev.log").read_text()[-3000:]
        want = expected_jobs(sim, last - timedelta(days=2), last)
    assert sorted(stored_ids(tmp_path)["id"]) == sorted(want)
    assert TOKEN not in (tmp_path / "dagster_dev.log").read_text()


@pytest.mark.slow
def test_a_backfill_over_days_and_targets_fails_only_the_target_with_bad_credentials(tmp_path):
    last = yesterday()
    days = [(last - timedelta(days=n)).isoformat() for n in range(1, -1, -1)]
    home = tmp_path / "dagster_home"
    home.mkdir()
    projects = {"sg": "proj-sg", "hk": "proj-hk", "eu": "proj-eu"}
    config = SimulatorConfig(seed=3, jobs_per_day=40, token=TOKEN, history_days=40, project_ids=tuple(projects.values()))
    with DdsSimulator(config, port=0) as sim:
        targets = tmp_path / "targets.yaml"
        targets.write_text("targets:\n" + "".join(
            f"  - {{name: {name}, region: ap-southeast-1, project_id: {pid}, endpoint: '{sim.url}', "
            f"credentials: {name.upper()}_}}\n" for name, pid in projects.items()))
        env = {**env_without_secrets(), "DDS_TARGETS_FILE": str(targets), "DDS_DATA_DIR": str(tmp_path / "data"),
               "SG_DDS_AUTH_TOKEN": TOKEN, "HK_DDS_AUTH_TOKEN": TOKEN, "EU_DDS_AUTH_TOKEN": "wrong-token",
               "DAGSTER_HOME": str(home)}
        with dagster_dev(ROOT, env, tmp_path / "dagster_dev.log") as base:
            url = f"{base}/graphql"
            status = backfill(url, [f"{day}|{name}" for day in days for name in projects])
            # The daemon's sensor then writes the stored targets' snapshots: a run per failed run and stored target.
            with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                wait_until(lambda: len(snapshot_runs(instance)) >= len(days) * 2 or None, 240,
                           "the sensor dds_jobs_parquet_after_partial_failure's runs")
        log = (tmp_path / "dagster_dev.log").read_text()
        assert status in ("COMPLETED", "COMPLETED_FAILED", "FAILED"), log[-3000:]
        stored = stored_ids(tmp_path)
        for name in ("sg", "hk"):
            window = (datetime.combine(last - timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc),
                      datetime.combine(last, datetime.max.time(), tzinfo=timezone.utc))
            want = {job["id"] for job in sim.store.visible_jobs(projects[name], *window)}
            assert set(stored.loc[stored["project_id"] == projects[name], "id"]) == want and want
        assert projects["eu"] not in set(stored["project_id"])
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        # Dagster 1.13's daemon runs such a backfill as one run per day over the selected targets: each fails on
        # the bad target after storing the others, whose days it records as materialized; the sensor's runs then
        # write and record those days' snapshots, one run per failed run and stored target.
        runs = [run for run in instance.get_runs() if run.job_name != PARQUET_JOB]
        assert {run.status for run in runs} == {DagsterRunStatus.FAILURE}, [run.tags for run in runs]
        assert sorted((run.tags["dds/snapshots_of_run"], run.tags["dds/target"]) for run in snapshot_runs(instance)) \
            == sorted((run.run_id, name) for run in runs for name in ("sg", "hk"))
        for asset in ("dds_jobs", "dds_jobs_parquet"):
            materialized = {f"{day}|{name}" for name in ("sg", "hk", "eu") for day in days
                            if instance.fetch_materializations(AssetRecordsFilter(
                                asset_key=AssetKey(asset), asset_partitions=[f"{day}|{name}"]), limit=1).records}
            assert materialized == {f"{day}|{name}" for day in days for name in ("sg", "hk")}, asset
    assert TOKEN not in log


def snapshot_runs(instance: DagsterInstance) -> list:
    """The successful runs of the job the sensor dds_jobs_parquet_after_partial_failure launches."""
    return list(instance.get_runs(RunsFilter(job_name=PARQUET_JOB, statuses=[DagsterRunStatus.SUCCESS])))


def _launch(url: str, params: dict):
    answer = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if answer["__typename"] == "LaunchBackfillSuccess":
        return answer
    if "not found" in str(answer.get("message", "")).lower():
        return None
    raise AssertionError(f"backfill refused: {answer}")
