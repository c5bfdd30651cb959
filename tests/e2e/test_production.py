"""The production setup for real: a Dagster instance loaded from deploy/dagster.yaml on PostgreSQL, whose daemon
queues and runs syncs into a PostgreSQL warehouse and Parquet snapshots on S3-compatible storage (moto's server on
loopback). The snapshots on S3 by themselves: tests/integration/test_s3_snapshots.py."""

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, DagsterRunStatus, RunRecord, RunsFilter

from pipeline.defs.partitions import range_tags
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.snapshots.s3 import S3Options
from pipeline.snapshots.store import ParquetStore
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import (
    TOKEN,
    env_without_secrets,
    expected_jobs,
    pipeline_env,
    yesterday,
)
from tests.support.job_rows import by_key
from tests.support.paths import BIN, ROOT
from tests.support.processes import spawn, stop
from tests.support.s3 import SECRET_KEY, s3_env


@pytest.fixture
def dagster_database(postgres_server_url) -> Iterator[dict[str, str]]:
    """A scratch PostgreSQL database for Dagster's own storage, as the DAGSTER_PG_* variables of deploy/dagster.yaml."""
    server = sa.engine.make_url(postgres_server_url)
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield {"DAGSTER_PG_HOST": server.host or "127.0.0.1", "DAGSTER_PG_PORT": str(server.port or 5432),
           "DAGSTER_PG_DB": name, "DAGSTER_PG_USERNAME": server.username or "postgres",
           "DAGSTER_PG_PASSWORD": server.password or ""}
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def daemon(env: dict[str, str], log_path: Path) -> Iterator[None]:
    """``dagster-daemon run`` from the project root, as docs/deployment.md starts it; stopped on exit."""
    with open(log_path, "w") as log:
        process = spawn([str(BIN / "dagster-daemon"), "run"], cwd=ROOT, env=env, stdout=log,
                        stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            # The daemon's code server may outlive it, orphaned, in the group the daemon led: stop ends it too.
            stop(process, grace_seconds=60)


def launch(env: dict[str, str], first: date, last: date, run_id: str) -> subprocess.Popen:
    """Queue a sync of first..last through the instance's run coordinator, as the UI's Materialize does
    (``__ASSET_JOB`` is Dagster's implicit job of all assets)."""
    tags = range_tags(first, last)
    return subprocess.Popen([str(BIN / "dagster"), "job", "launch", "-m", "pipeline.definitions", "-j", "__ASSET_JOB",
                             "--tags", json.dumps(tags), "--run-id", run_id], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished_runs(instance: DagsterInstance, run_ids: list[str]) -> list[RunRecord] | None:
    """The records of ``run_ids`` once every one of them has finished."""
    records = instance.get_run_records(RunsFilter(run_ids=run_ids))
    return records if len(records) == len(run_ids) and all(r.dagster_run.is_finished for r in records) else None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.postgres
@pytest.mark.slow
def test_a_production_instance_queues_syncs_one_at_a_time_into_postgres_and_s3(
    tmp_path, monkeypatch, postgres_url, dagster_database, s3_endpoint, bucket
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    last = yesterday()
    runs = {str(uuid.uuid4()): (last - timedelta(days=3), last), str(uuid.uuid4()): (last - timedelta(days=1), last)}
    for name, value in dagster_database.items():
        monkeypatch.setenv(name, value)
    with DdsSimulator(SimulatorConfig(seed=8, jobs_per_day=40, token=TOKEN, history_days=40), port=0) as sim:
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data"), **dagster_database,
               **s3_env(s3_endpoint), "DAGSTER_HOME": str(home), "DDS_WAREHOUSE_URL": postgres_url,
               "DDS_PARQUET_ROOT": f"s3://{bucket}/prod"}
        pool_set = subprocess.run([str(BIN / "dagster"), "instance", "concurrency", "set", "dds_api", "1"],
                                  env=env, capture_output=True, text=True, timeout=120)
        assert pool_set.returncode == 0, pool_set.stderr[-3000:]
        with daemon(env, tmp_path / "daemon.log"), DagsterInstance.from_config(str(home)) as instance:
            launches = [launch(env, first, last_day, run_id) for run_id, (first, last_day) in runs.items()]
            outputs = [process.communicate(timeout=120)[0] for process in launches]
            assert all(process.returncode == 0 for process in launches), [o[-3000:] for o in outputs]
            records = wait_for(lambda: finished_runs(instance, list(runs)), 180, "the daemon to run both syncs")
            assert {r.dagster_run.status for r in records} == {DagsterRunStatus.SUCCESS}, (
                (tmp_path / "daemon.log").read_text()[-3000:])
            # The pool dds_api (limit 1, run granularity) let the second run start only once the first ended.
            earlier, later = sorted(records, key=lambda r: r.start_time)
            assert earlier.end_time <= later.start_time
            pool = instance.event_log_storage.get_concurrency_info("dds_api")
            assert pool.slot_count == 1 and type(instance.run_storage).__name__ == "PostgresRunStorage"
            want = expected_jobs(sim, last - timedelta(days=3), last)
        daemon_log = (tmp_path / "daemon.log").read_text()

    dagster_db = sa.create_engine(sa.engine.URL.create(
        "postgresql+psycopg", username=dagster_database["DAGSTER_PG_USERNAME"],
        host=dagster_database["DAGSTER_PG_HOST"], port=int(dagster_database["DAGSTER_PG_PORT"]),
        database=dagster_database["DAGSTER_PG_DB"]))
    with dagster_db.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT run_id, status FROM runs")).all())
        events = conn.execute(sa.text(
            "SELECT run_id, dagster_event_type, asset_key, partition FROM event_logs WHERE run_id <> ''")).all()
        daemons = {row[0] for row in conn.execute(sa.text("SELECT daemon_type FROM daemon_heartbeats"))}
        stored_text = "".join(row[0] for row in conn.execute(sa.text("SELECT event FROM event_logs")))
        stored_text += "".join(row[0] for row in conn.execute(sa.text("SELECT run_body FROM runs")))
    dagster_db.dispose()
    assert statuses == {run_id: "SUCCESS" for run_id in runs}
    for run_id, (first, last_day) in runs.items():
        days = {(first + timedelta(days=n)).isoformat() for n in range((last_day - first).days + 1)}
        for asset in ("dds_jobs", "dds_jobs_parquet"):
            # asset_key holds the key's path as JSON, e.g. ["dds_jobs"]: quoted, so dds_jobs_parquet differs.
            materialized = {p for r, kind, key, p in events
                            if r == run_id and kind == "ASSET_MATERIALIZATION" and f'"{asset}"' in (key or "")}
            assert materialized == days
    assert {"SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= daemons
    assert TOKEN not in stored_text + daemon_log and SECRET_KEY not in stored_text + daemon_log + "".join(outputs)

    warehouse = Warehouse(postgres_url)
    days = [last - timedelta(days=n) for n in range(3, -1, -1)]
    stored = warehouse.read_days(days)
    warehouse.dispose()
    assert sorted(stored["id"]) == sorted(want)
    snapshot = ParquetStore(f"s3://{bucket}/prod", s3=S3Options.from_variables(s3_env(s3_endpoint)))
    pd.testing.assert_frame_equal(by_key(snapshot.read_days(days)), by_key(stored), check_dtype=False)
