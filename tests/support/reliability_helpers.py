"""What the reliability tests share: runs with a tuned API resource, the exact-data verdict, a hook on the
simulator's jobs route, and sync runs in child processes (``tests/support/sync_child.py``)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import sqlalchemy as sa
from dagster import Definitions, ExecuteInProcessResult

from pipeline.defs.partitions import range_tags
from pipeline.defs.resources import DdsTaskCenterResource
from pipeline.simulator.server import (
    JOBS_PATH,
    DdsSimulator,
    RequestInfo,
    Response,
    list_jobs,
)
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import TOKEN, PipelineUnderTest, expected_jobs
from tests.support.paths import ROOT

# Retries fast enough for tests; the read timeout is what turns the simulator's "slow" fault into a timeout.
FAST_RETRIES = {"retry_base_delay_seconds": 0.02, "retry_max_attempts": 10, "read_timeout_seconds": 0.5}
CHILD_TIMEOUT_SECONDS = 120


def sync_with_api(p: PipelineUnderTest, first: date, last: date, **api_fields: object) -> ExecuteInProcessResult:
    """Like ``p.sync`` (one run over first..last, errors kept in the result), with the ``dds_api`` resource's
    fields (retries, timeouts, or any other) set as given."""
    defs = p.definitions()
    fields = {"project_id": p.settings.project_id, "endpoint": p.settings.endpoint, "auth_token": TOKEN}
    api = DdsTaskCenterResource(**{**fields, **api_fields})
    tuned = Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        resources={**defs.resources, "dds_api": api},
        executor=defs.executor,
    )
    job = tuned.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=p.instance, tags=range_tags(first, last), raise_on_error=False)


def failure_messages(result: ExecuteInProcessResult) -> list[str]:
    """The innermost error message of each failed step: what the user reads as the reason."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            messages.append(error.message.strip())
    return messages


def stored_jobs(url: str) -> pd.DataFrame:
    """Every row of ``dds_jobs``, by id."""
    warehouse = Warehouse(url)
    try:
        return warehouse.query("SELECT * FROM dds_jobs ORDER BY project_id, id")
    finally:
        warehouse.dispose()


def snapshot_jobs(parquet_root: str) -> pd.DataFrame:
    """Every row of the Parquet snapshots, read whole as analysts do (hidden files skipped), by id."""
    path = Path(parquet_root) / "dds_jobs"
    if not path.is_dir():
        return pd.DataFrame({"id": [], "status": []})
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    return table.to_pandas().sort_values(["project_id", "id"], ignore_index=True)


def leftover_files(parquet_root: str) -> list[str]:
    """Files under the snapshots that are neither a day's data file nor its lock: temporary or foreign ones."""
    path = Path(parquet_root) / "dds_jobs"
    if not path.is_dir():
        return []
    return sorted(
        str(f.relative_to(path)) for f in path.rglob("*") if f.is_file() and f.name not in ("part-0.parquet", ".lock")
    )


def assert_exact_data(p: PipelineUnderTest, first: date, last: date) -> dict[str, dict]:
    """The warehouse and the snapshots hold exactly the API's jobs of first..last, each once and in its current
    state, and no temporary file is left among the snapshots; returns those jobs by id."""
    want = {job_id: job["status"] for job_id, job in expected_jobs(p.sim, first, last).items()}
    for where, rows in (("warehouse", stored_jobs(p.settings.warehouse_url)),
                        ("parquet", snapshot_jobs(p.settings.parquet_root))):
        assert rows["id"].is_unique, f"{where} holds a job twice"
        got = dict(zip(rows["id"], rows["status"]))
        assert got.keys() == want.keys(), (
            f"{where}: {len(want.keys() - got.keys())} job(s) missing, {len(got.keys() - want.keys())} unexpected"
        )
        assert got == want, f"{where}: {sum(got[k] != want[k] for k in want)} job(s) in a stale state"
    assert leftover_files(p.settings.parquet_root) == []
    return expected_jobs(p.sim, first, last)


def hooked_jobs_route(hook: Callable[[DdsSimulator, RequestInfo], None]) -> tuple:
    """The simulator's jobs route (authenticated, faults injected) calling ``hook`` before it answers a request."""

    def answer(sim: DdsSimulator, request: RequestInfo) -> Response:
        hook(sim, request)
        return list_jobs(sim, request)

    return ("GET", JOBS_PATH, answer, True, True)


def job_requests(sim) -> list:
    """The simulator's records of the requests of its jobs route."""
    return [r for r in sim.requests if r.path.endswith("/jobs")]


def parquet_files(root: str) -> dict[str, bytes]:
    """Every Parquet file under ``root``, by path relative to it, with its bytes."""
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(Path(root).rglob("*.parquet"))}


def middle_job_id(url: str) -> str:
    """The id in the middle of the stored ones, in key order."""
    ids = sorted(stored_jobs(url)["id"])
    return ids[len(ids) // 2]


def lock_row(connection: sa.Connection, job_id: str) -> None:
    """Locks a row of dds_jobs for the connection's transaction: an upsert reaching that row waits there."""
    connection.execute(sa.text("SELECT id FROM dds_jobs WHERE id = :id FOR UPDATE"), {"id": job_id})


def waiting_upserts(engine: sa.Engine) -> list[int]:
    """The PostgreSQL server processes of upserts into dds_jobs that wait for a lock."""
    with engine.connect() as connection:
        return list(connection.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query LIKE '%INSERT INTO dds_jobs%'"
        )).scalars())


def wait_for(condition: Callable[[], object], what: str, timeout: float = CHILD_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


class SyncChild:
    """``tests/support/sync_child.py`` run for first..last with this process's environment (plus ``env``); its output
    goes to the file ``log``."""

    def __init__(self, first: date, last: date, log: Path, stop_at: str | None = None, marker: Path | None = None,
                 env: dict[str, str] | None = None):
        self.log = log
        args = [sys.executable, "-m", "tests.support.sync_child", first.isoformat(), last.isoformat()]
        if stop_at is not None:
            args += ["--stop-at", stop_at, "--marker", str(marker)]
        with open(log, "wb") as output:
            self.process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=output,
                                            stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def finish(self) -> int:
        """The exit status, once the run is over (its log is shown when the run failed)."""
        status = self.process.wait(timeout=CHILD_TIMEOUT_SECONDS)
        assert status == 0, f"child run failed ({status}):\n{self.output()[-3000:]}"
        return status

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Ends the child if a failed test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
