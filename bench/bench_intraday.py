"""The intraday benchmark of issue 22: what one tick costs, and how soon a job (and its failure) is known.

    .venv/bin/python bench/bench_intraday.py [--targets 1 50] [--jobs-per-day 1000] [--partition today|yesterday|D]
        [--latency | --latency-only] [--interval-minutes 1] [--latency-budget 420] [--json out.json]

Per tick: the contract's command ``dagster asset materialize -m pipeline.definitions --select
dds_jobs,dds_jobs_parquet --partition <day>`` (with several targets, ``--partition-range "D|t00...D|t49"``: one run
for all) in a process of its own against the simulator (in this process, so that it counts the requests); CPU
seconds from the child's rusage (its own children included), requests as the simulator received them, beside the
pages the day's jobs need (one request per 100 jobs a target holds for the window, plus one when they fill the
last page exactly). Until the intraday branch lands, today is not a partition: ``--partition yesterday``.

Latency (``--latency``): ``dagster-daemon run`` with ``DDS_INTRADAY_MINUTES`` ticking schedule
``dds_jobs_intraday`` (docs/intraday.md), the simulator's clock following the wall clock; probe jobs are created, then
one of them fails; the warehouse is polled for their rows and a local JSON webhook (``DDS_ALERT_URLS=json://...``)
for the alert. Without the schedule (or without asset ``dds_jobs_alerts``) the figure prints "not available".
Everything binds to 127.0.0.1 and stops itself within its budget. A benchmark, not a test: nothing asserts a time.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intraday_latency import measure_latency  # noqa: E402
from bench.processes import dagster_env  # noqa: E402
from pipeline.simulator import DdsSimulator, SimulatorConfig  # noqa: E402

PAGE = 100
# Issue 22's targets: CPU seconds per tick, one run for all targets.
MAX_CPU_S = {1: 5.0, 50: 12.0}
RUN_BUDGET_S = 600


class PartitionRefused(RuntimeError):
    """Dagster refused the partition: today, before the intraday branch made it one."""


@dataclass
class Tick:
    """One measured run: ``targets`` synced in one run of ``partition``, ``requests`` the simulator received,
    ``pages_needed`` by the jobs it held for the window, CPU and wall seconds of the child, and the jobs stored."""

    targets: int
    partition: str
    requests: int
    pages_needed: int
    cpu_s: float
    wall_s: float
    stored: int

    @property
    def cpu_target(self) -> float | None:
        return MAX_CPU_S.get(self.targets)

    def verdicts(self) -> tuple[str, str]:
        requests = "met" if self.requests <= self.pages_needed else "NOT MET"
        target = self.cpu_target
        cpu = "" if target is None else ("met" if self.cpu_s <= target else "NOT MET")
        return requests, cpu


def target_names(count: int) -> list[str]:
    return [f"t{number:02d}" for number in range(count)]


def project_ids(count: int) -> tuple[str, ...]:
    return tuple(f"bench{number:02d}{'0' * 24}" for number in range(count))


def resolve_day(text: str) -> date:
    today = datetime.now(timezone.utc).date()
    return {"today": today, "yesterday": today - timedelta(days=1)}.get(text) or date.fromisoformat(text)


def targets_file(path: Path, url: str, count: int) -> Path:
    """A DDS_TARGETS_FILE of ``count`` targets, every one a project of the simulator at ``url``."""
    lines = ["targets:"]
    for name, project in zip(target_names(count), project_ids(count)):
        lines += [f"  - name: {name}", "    region: ap-southeast-1", f"    project_id: {project}",
                  f"    endpoint: {url}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_env(sim: DdsSimulator, token: str, scratch: Path, targets: int, concurrency: int) -> dict[str, str]:
    """The docs/configuration.md variables of a run against ``sim``: one project, or a targets file of ``targets``."""
    env = dagster_env(sim.url, token, scratch / "data", scratch / "home", concurrency)
    env["DDS_START_DATE"] = (datetime.now(timezone.utc).date() - timedelta(days=7)).isoformat()
    if targets > 1:
        del env["DDS_PROJECT_ID"]
        env["DDS_TARGETS_FILE"] = str(targets_file(scratch / "targets.yaml", sim.url, targets))
    else:
        env["DDS_PROJECT_ID"] = sim.project_id
    return env


def partition_args(day: date, targets: int) -> list[str]:
    if targets == 1:
        return ["--partition", day.isoformat()]
    names = target_names(targets)
    return ["--partition-range", f"{day.isoformat()}|{names[0]}...{day.isoformat()}|{names[-1]}"]


def materialize(env: dict[str, str], day: date, targets: int) -> tuple[float, float]:
    """CPU seconds (user + system, its children included) and wall seconds of the contract's command."""
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipeline.definitions", "--select",
               "dds_jobs,dds_jobs_parquet", *partition_args(day, targets)]
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            _, status, usage = os.wait4(process.pid, 0) if _wait(process, RUN_BUDGET_S) else (0, 0, None)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()
        wall = time.perf_counter() - started
        if usage is None or os.waitstatus_to_exitcode(status) != 0:
            output.seek(0)
            text = output.read()
            if "PartitionsDefinition containing the passed partition key" in text:
                raise PartitionRefused(f"Dagster refuses the partition {day}")
            raise RuntimeError(f"the run of {day} for {targets} target(s) failed:\n{text[-2000:]}")
    return usage.ru_utime + usage.ru_stime, wall


def _wait(process: subprocess.Popen, budget_s: float) -> bool:
    """True once the process has exited (not reaped), False after ``budget_s``."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.1)
    return False


def pages_needed(sim: DdsSimulator, day: date, run_started: datetime) -> int:
    """The requests the day's window needs at the least: its jobs per target, by pages of 100 (and one more
    when they fill the last page exactly, since only a short page ends the paging)."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    end = min(start + timedelta(days=1), run_started)
    return sum(len(sim.store.visible_jobs(pid, start, end)) // PAGE + 1 for pid in sim.config.project_ids)


def stored_rows(env: dict[str, str]) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{env['DDS_DATA_DIR']}/warehouse.db")
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT COUNT(*) FROM dds_jobs").scalar_one()
    finally:
        engine.dispose()


def measure_tick(targets: int, jobs_per_day: int, day: date, latency_ms: float, concurrency: int) -> Tick:
    token = secrets.token_urlsafe(16)
    # Two days of history hold yesterday and today: all a tick reads, and 50 targets' jobs stay in memory.
    config = SimulatorConfig(seed=22, project_ids=project_ids(targets), token=token, jobs_per_day=jobs_per_day,
                             history_days=2, latency_s=latency_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="bench_intraday_") as scratch, DdsSimulator(config, port=0) as sim:
        env = run_env(sim, token, Path(scratch), targets, concurrency)
        needed = pages_needed(sim, day, sim.store.now + timedelta(seconds=1))
        cpu_s, wall_s = materialize(env, day, targets)
        return Tick(targets, day.isoformat(), len(sim.requests), needed, round(cpu_s, 2), round(wall_s, 2),
                    stored_rows(env))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 50], help="target counts (default 1 50)")
    parser.add_argument("--jobs-per-day", type=int, default=1000, help="jobs a day per target (default 1000)")
    parser.add_argument("--partition", default="today",
                        help="the day a tick syncs: today (default), yesterday or YYYY-MM-DD")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the simulator's answer time (default 20)")
    parser.add_argument("--concurrency", type=int, default=12, help="DDS_MAX_CONCURRENCY (default 12)")
    latency = parser.add_mutually_exclusive_group()
    latency.add_argument("--latency", action="store_true", help="also measure creation-to-row and failure-to-alert")
    latency.add_argument("--latency-only", action="store_true", help="only the latency, no tick cost")
    parser.add_argument("--interval-minutes", type=int, default=1, help="DDS_INTRADAY_MINUTES (default 1)")
    parser.add_argument("--latency-budget", type=float, default=420.0,
                        help="seconds the latency part may last at most (default 420)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    return parser.parse_args(argv)


def print_ticks(ticks: list[Tick]) -> None:
    print("\n| targets | partition | requests | pages needed | requests verdict | CPU-s | CPU target | CPU verdict "
          "| wall s | rows stored |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tick in ticks:
        requests, cpu = tick.verdicts()
        target = "" if tick.cpu_target is None else f"<= {tick.cpu_target:g}"
        print(f"| {tick.targets} | {tick.partition} | {tick.requests} | {tick.pages_needed} | {requests} | "
              f"{tick.cpu_s:.2f} | {target} | {cpu} | {tick.wall_s:.1f} | {tick.stored} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    day = resolve_day(args.partition)
    print(f"bench_intraday: {os.cpu_count()} CPUs, partition {day}, {args.jobs_per_day} jobs a day per target",
          flush=True)
    ticks: list[Tick] = []
    if not args.latency_only:
        for targets in args.targets:
            try:
                tick = measure_tick(targets, args.jobs_per_day, day, args.latency_ms, args.concurrency)
            except PartitionRefused:
                day -= timedelta(days=1)
                print(f"  today is not a partition yet (issue 22's intraday branch): measuring {day} instead",
                      flush=True)
                tick = measure_tick(targets, args.jobs_per_day, day, args.latency_ms, args.concurrency)
            ticks.append(tick)
            print(f"  {targets} target(s): {ticks[-1]}", flush=True)
        print_ticks(ticks)
    latency = None
    if args.latency or args.latency_only:
        latency = measure_latency(args.interval_minutes, args.jobs_per_day, args.latency_budget)
        print(f"\nlatency at DDS_INTRADAY_MINUTES={args.interval_minutes}:")
        for line in latency.lines():
            print(f"  {line}")
    if args.json is not None:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "ticks": [asdict(tick) for tick in ticks],
                                         "latency": None if latency is None else asdict(latency)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
