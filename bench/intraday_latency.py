"""The latency half of bench_intraday.py: from a job's creation in the simulator to its row in the warehouse, and
from its failure to its alert, with ``dagster-daemon`` ticking schedule ``dds_jobs_intraday``.

The simulator runs in this process with its clock following the wall clock (moved on every half second), a JSON
webhook server beside it receives the alerts (apprise ``json://``), and the warehouse (SQLite) is polled every
second: a benchmark, so polling is how it watches, and every figure is a wall-clock difference.
"""

import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from bench.processes import dagster_env
from pipeline.simulator import DdsSimulator, SimulatorConfig

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE, ALERTS_ASSET = "dds_jobs_intraday", "dds_jobs_alerts"
PROBES = 3
# Seconds between the probe jobs' creations, and from the first one to the failure of the last.
PROBE_SPACING_S, FAIL_AFTER_S = 15, 50
_LIST_DEFS = """
import json, dagster as dg
from pipeline import definitions
defs = definitions.defs
defs = defs() if callable(defs) and not isinstance(defs, dg.Definitions) else defs
repo = defs.get_repository_def()
print(json.dumps({"schedules": [s.name for s in repo.schedule_defs],
                  "assets": [key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()]}))
"""


@dataclass
class Latency:
    """Seconds from each probe job's creation to its row, and from the failure to its alert; None: not measured,
    ``note`` says why."""

    creation_to_row_s: list[float] | None = None
    failure_to_row_s: float | None = None
    failure_to_alert_s: float | None = None
    note: str = ""
    interval_minutes: int = 1
    runs: int = 0
    detail: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        def shown(value: object) -> str:
            if value is None:
                return "not available" + (f" ({self.note})" if self.note else "")
            if isinstance(value, list):
                return ", ".join(f"{item:.0f} s" for item in value) + f" (max {max(value):.0f} s)"
            return f"{value:.0f} s"
        target = f"target <= {self.interval_minutes * 60 + 60} s (the interval plus 1 minute)"
        return [f"creation to row: {shown(self.creation_to_row_s)}; {target}",
                f"failure to row:  {shown(self.failure_to_row_s)}",
                f"failure to alert: {shown(self.failure_to_alert_s)}", *self.detail]


def defined_names(env: dict[str, str]) -> dict[str, list[str]]:
    """The schedules and asset keys pipeline.definitions holds under ``env``."""
    done = subprocess.run([sys.executable, "-c", _LIST_DEFS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"pipeline.definitions did not load: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class _Webhook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((time.monotonic(), body.decode(errors="replace")))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def webhook() -> Iterator[ThreadingHTTPServer]:
    """A JSON webhook on 127.0.0.1; ``server.received`` lists (monotonic time, body) of each POST."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def wall_clock(sim: DdsSimulator) -> Iterator[None]:
    """Moves the simulator's clock to the wall clock every half second, while inside."""
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(0.5):
            behind = int((datetime.now(timezone.utc) - sim.store.now).total_seconds())
            if behind > 0:
                sim.store.advance(timedelta(seconds=behind))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` on the pipeline's definitions, its schedule started, stopped as a group."""
    with log.open("w") as output:
        subprocess.run([sys.executable, "-m", "dagster", "schedule", "start", SCHEDULE, "-m", "pipeline.definitions"],
                       cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=180)
        process = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", "pipeline.definitions"],
                                   cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            stop_group(process)


def stop_group(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM to the daemon's process group, SIGKILL after ``grace_s``; returns once every member has exited
    (its code server and run workers too, so none writes into the scratch folder after it is removed)."""
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while True:
        process.poll()
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            deadline = math.inf
        time.sleep(0.2)


def stored(warehouse: Path, ids: list[str]) -> dict[str, str]:
    """The status stored for each of ``ids`` that has a row."""
    if not warehouse.exists():
        return {}
    engine = sa.create_engine(f"sqlite:///{warehouse}")
    try:
        with engine.connect() as connection:
            marks = ",".join("?" * len(ids))
            rows = connection.exec_driver_sql(f"SELECT id, status FROM dds_jobs WHERE id IN ({marks})", tuple(ids))
            return dict(rows.all())
    except sa.exc.OperationalError:  # the table is not there yet
        return {}
    finally:
        engine.dispose()


def measure_latency(interval_minutes: int, jobs_per_day: int, budget_s: float) -> Latency:
    """Probe jobs created while the daemon ticks; returns when every figure is in or ``budget_s`` has passed."""
    token = secrets.token_urlsafe(16)
    config = SimulatorConfig(seed=23, token=token, jobs_per_day=jobs_per_day, history_days=2)
    result = Latency(interval_minutes=interval_minutes)
    with tempfile.TemporaryDirectory(prefix="bench_latency_") as scratch, DdsSimulator(config, port=0) as sim, \
            webhook() as hook:
        env = dagster_env(sim.url, token, Path(scratch) / "data", Path(scratch) / "home", 12)
        env.update(DDS_INTRADAY_MINUTES=str(interval_minutes),
                   DDS_START_DATE=(datetime.now(timezone.utc).date() - timedelta(days=7)).isoformat())
        names = defined_names(env)
        if SCHEDULE not in names["schedules"]:
            result.note = f"pipeline.definitions has no schedule {SCHEDULE} yet (the intraday branch)"
            return result
        alerts = ALERTS_ASSET in names["assets"]
        if alerts:
            env["DDS_ALERT_URLS"] = f"json://127.0.0.1:{hook.server_address[1]}/alerts"
        warehouse = Path(env["DDS_DATA_DIR"]) / "warehouse.db"
        with wall_clock(sim), daemon(env, Path(scratch) / "daemon.log") as process:
            result = _watch(sim, hook, warehouse, result, alerts, budget_s, process)
    return result


def _watch(sim: DdsSimulator, hook: ThreadingHTTPServer, warehouse: Path, result: Latency, alerts: bool,
           budget_s: float, process: subprocess.Popen) -> Latency:
    started = time.monotonic()
    created: dict[str, float] = {}
    seen: dict[str, float] = {}
    failed_at = failure_seen = alert_at = None
    while time.monotonic() - started < budget_s and process.poll() is None:
        now = time.monotonic()
        if len(created) < PROBES and now - started >= len(created) * PROBE_SPACING_S:
            created[sim.store.add_jobs(1)[0]] = now
        failing = next(reversed(created))
        if failed_at is None and len(created) == PROBES and now - started >= FAIL_AFTER_S:
            sim.store.end_job(failing, "Failed")
            failed_at = now
        statuses = stored(warehouse, list(created))
        for job_id in statuses.keys() - seen.keys():
            seen[job_id] = now
        if failed_at is not None and failure_seen is None and statuses.get(failing) == "Failed":
            failure_seen = now
        if failed_at is not None and alert_at is None:
            alert_at = next((at for at, body in list(hook.received) if failing in body and at >= failed_at), None)
        if len(seen) == PROBES and failure_seen is not None and (alert_at is not None or not alerts):
            break
        time.sleep(1.0)
    if len(seen) == PROBES:
        result.creation_to_row_s = [seen[job_id] - created[job_id] for job_id in created]
    else:
        result.note = f"only {len(seen)} of {PROBES} probe jobs stored within {budget_s:.0f} s"
    if failure_seen is not None:
        result.failure_to_row_s = failure_seen - failed_at
    if alert_at is not None:
        result.failure_to_alert_s = alert_at - failed_at
    elif not alerts:
        result.note = result.note or f"no asset {ALERTS_ASSET} yet (the alerts branch)"
    result.detail.append(f"{len(hook.received)} webhook message(s) received")
    return result
