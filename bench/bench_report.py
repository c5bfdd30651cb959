"""Benchmark of the analyst report (``dds-tasks report``) over a large warehouse: seconds and peak memory.

It stores ``--jobs`` synthetic jobs (default 1,000,000, all inside the report's period: the worst case, every
stored job aggregated) in a scratch SQLite warehouse (or ``--postgres URL``), then runs ``dds-tasks report`` as a
user does, in a fresh process, ``--repeat`` times: its wall time (interpreter start included) and its peak
resident memory. An in-process run then splits the time between the queries, the charts and the page.
Targets (issue 16): at most 5 s (judged on the median run: the shared host's pace moves between runs) and at most
300 MB (the largest run).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_sync import machine_pace_ms  # noqa: E402
from bench.processes import scratch_postgres  # noqa: E402
from pipeline.records.normalize import normalize_jobs  # noqa: E402
from pipeline.report import charts  # noqa: E402
from pipeline.report.figures import ReportScope, collect_figures  # noqa: E402
from pipeline.report.html import render_html  # noqa: E402
from pipeline.report.period import period_ending  # noqa: E402
from tests.support.records import synthetic_records  # noqa: E402
from pipeline.warehouse.store import Warehouse  # noqa: E402

TARGET_SECONDS, TARGET_MB = 5.0, 300
BATCH = 100_000
# What the dds-tasks script runs, followed by the process's own peak resident memory (kB, Linux's VmHWM) on stderr.
# getrusage's figure would not do: Linux carries the parent's peak over into a child's maxrss when it execs, so it
# would count this benchmark's own memory (the million jobs it generated).
_REPORT_WITH_PEAK = (
    "import re, sys; from pipeline.cli.main import main; status = main(sys.argv[1:]); "
    "print(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr); "
    "sys.exit(status)"
)


class TimedWarehouse(Warehouse):
    """A warehouse that adds up the seconds each SQL file of the report takes."""

    seconds: dict[str, float]

    def query(self, sql: str, **params: object):
        started = time.perf_counter()
        try:
            return super().query(sql, **params)
        finally:
            name = sql.split("\n", 1)[0][3:60]
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def fill(url: str, jobs: int, first_day: date, days: int) -> float:
    """Store ``jobs`` synthetic jobs created over ``days`` days from ``first_day``; seconds taken."""
    started = time.perf_counter()
    warehouse = Warehouse(url)
    seen_at = datetime.now(timezone.utc)
    for batch, offset in enumerate(range(0, jobs, BATCH)):
        records = synthetic_records(min(BATCH, jobs - offset), first_day, days=days, seed=batch)
        warehouse.upsert(normalize_jobs(records, "bench-project", seen_at=seen_at).frame)
        print(f"  stored {offset + len(records):,} jobs", end="\r", flush=True)
    warehouse.dispose()
    return time.perf_counter() - started


def cli_runs(url: str, first_day: date, last_day: date, out: Path, repeat: int) -> tuple[list[float], float]:
    """Wall seconds of each ``dds-tasks report`` process, and the peak resident MB of the largest."""
    env = {"PATH": "/usr/bin:/bin", "DDS_DATA_DIR": str(out), "DDS_WAREHOUSE_URL": url}
    seconds, peaks = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _REPORT_WITH_PEAK, "report", "--since", str(first_day),
                               "--until", str(last_day), "--out", str(out / "report.html")],
                              env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"dds-tasks report failed: {done.stderr.strip()}")
        peaks.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    return seconds, max(peaks)


def breakdown(url: str, first_day: date, last_day: date) -> dict[str, float]:
    """Seconds of each step of one report, in this process (imports already paid)."""
    warehouse = TimedWarehouse(url)
    warehouse.seconds = defaultdict(float)
    period = period_ending(last_day, (last_day - first_day).days + 1)
    scope = ReportScope(None, "all projects", ("bench-project",), first_day)
    started = time.perf_counter()
    figures = collect_figures(warehouse, period, scope, datetime.now(timezone.utc))
    queried = time.perf_counter()
    page = render_html(figures, "bench")
    rendered = time.perf_counter()
    warehouse.dispose()
    steps = {f"query: {name}": seconds for name, seconds in warehouse.seconds.items()}
    steps["queries, all"] = queried - started
    steps["charts and page"] = rendered - queried
    steps[f"page size, KB ({charts.__name__} SVG inline)"] = len(page) / 1024
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs stored (default 1,000,000)")
    parser.add_argument("--days", type=int, default=30, help="days of the report's period, ending yesterday (30)")
    parser.add_argument("--repeat", type=int, default=3, help="dds-tasks report runs (default 3)")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server to bench on instead of SQLite")
    args = parser.parse_args(argv)
    last_day = datetime.now(timezone.utc).date() - timedelta(days=1)
    first_day = last_day - timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as scratch, scratch_postgres(args.postgres) as pg_url:
        url = pg_url or f"sqlite:///{scratch}/warehouse.db"
        print(f"storing {args.jobs:,} jobs over {first_day}..{last_day} in {url.split(':')[0]}")
        filled = fill(url, args.jobs, first_day, args.days)
        print(f"stored {args.jobs:,} jobs in {filled:.1f} s; machine pace {machine_pace_ms():.0f} ms")
        seconds, peak_mb = cli_runs(url, first_day, last_day, Path(scratch), args.repeat)
        steps = breakdown(url, first_day, last_day)
    print(f"\ndds-tasks report over {args.jobs:,} stored jobs ({args.days} days), {args.repeat} runs:")
    median = statistics.median(seconds)
    print(f"  wall seconds: median {median:.2f}, min {min(seconds):.2f}, max {max(seconds):.2f}"
          f"  (target <= {TARGET_SECONDS:.0f} s, median: {'met' if median <= TARGET_SECONDS else 'NOT met'})")
    verdict = "met" if peak_mb <= TARGET_MB else "NOT met"
    print(f"  peak memory: {peak_mb:.0f} MB  (target <= {TARGET_MB} MB: {verdict})")
    print("one report in process:")
    for step, value in steps.items():
        print(f"  {step:<66} {value:8.2f}")
    print(f"machine pace {machine_pace_ms():.0f} ms (a fixed pure-Python loop; higher is slower)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
