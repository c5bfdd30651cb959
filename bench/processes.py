"""What the sync benchmark starts beside itself: the simulator and the Dagster CLI in processes of their own,
and a scratch PostgreSQL database."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from pipeline.simulator.server import DEFAULT_PROJECT_ID

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def simulator_process(
    jobs_per_day: int, days: int, latency_ms: float, token: str, options: Sequence[str] = ()
) -> Iterator[str]:
    """The simulator serving on a free loopback port, in a process of its own (``options``: more of its command
    line, e.g. ``--rate-limit 10``); yields its URL."""
    command = [sys.executable, "-m", "pipeline.cli.simulate", "--port", "0", "--jobs-per-day", str(jobs_per_day),
               "--history-days", str(days + 2), "--latency-ms", str(latency_ms), f"--token={token}", *options]
    # A group of its own, stopped as a group: a benchmark started in the background inherits SIGINT ignored.
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        first_line = process.stdout.readline()
        found = re.search(r"serving (http://\S+)", first_line)
        if found is None:
            raise RuntimeError(f"the simulator did not start: {first_line.strip() or process.stdout.read(300)}")
        yield found[1]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def scratch_postgres(server_url: str | None) -> Iterator[str | None]:
    """The URL of a database of our own on the server, dropped afterwards; None without a server."""
    if server_url is None:
        yield None
        return
    admin, name = sa.create_engine(server_url, isolation_level="AUTOCOMMIT"), f"dds_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise SystemExit(f"bench_sync: cannot reach PostgreSQL ({str(exc.orig).strip().splitlines()[0]}); "
                         "--no-postgres skips it") from None
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def dagster_env(url: str, token: str, data_dir: Path, home: Path, concurrency: int) -> dict[str, str]:
    """The docs/configuration.md variables of a run against the simulator, with a Dagster instance of its own."""
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DDS_", "HUAWEICLOUD_", "DAGSTER_"))}
    return {**env, "DDS_ENDPOINT": url, "DDS_PROJECT_ID": DEFAULT_PROJECT_ID, "DDS_AUTH_TOKEN": token,
            "DDS_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home), "DDS_MAX_CONCURRENCY": str(concurrency)}


def cli_sync(module: str, env: dict[str, str], days: list[date]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of the contract's CLI command over ``days``, in a process of its own."""
    run = timed_run(sync_command(module, days), env)
    return run.seconds, run.peak_mb


def sync_command(module: str, days: list[date]) -> list[str]:
    """The contract's CLI sync of ``days`` (one run over the range) with the definitions of ``module``."""
    return [sys.executable, "-m", "dagster", "asset", "materialize", "-m", module, "--select",
            "dds_jobs,dds_jobs_parquet", "--partition-range", f"{days[0]:%Y-%m-%d}...{days[-1]:%Y-%m-%d}"]


@dataclass(frozen=True)
class TimedRun:
    """One command run to its end: wall seconds, CPU seconds (user + system, its children's included) and peak RSS."""

    seconds: float
    cpu_seconds: float
    peak_mb: int


def timed_run(command: list[str], env: dict[str, str]) -> TimedRun:
    """Run ``command`` from the project root; its figures, or RuntimeError with the end of its output."""
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"{' '.join(command[2:6])} failed ({process.returncode}):\n{output.read()[-1500:]}")
    return TimedRun(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024)
