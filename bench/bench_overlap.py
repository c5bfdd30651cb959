"""Would overlapping the sync's work with its fetch pay? The two overlaps issue 23 item 10 asked for, measured.

    .venv/bin/python bench/bench_overlap.py [--rounds 3] [--jobs 30000] [--latency-ms 20]

Against the simulator (a process of its own, ``--latency-ms`` per page), over the 30 days ending yesterday:

- **imports**: the fetch, then importing what the sync needs (pandas, pyarrow, pipeline.sync, pipeline.running),
  beside the same imports done while the fetch pages in a thread. Each in a fresh interpreter (an import is paid
  once per process), timed from before the fetch to the end of both.
- **load**: the fetch, then the SQLite upsert of the fetched rows into an empty warehouse, beside the upsert done
  while the same fetch pages in a thread. In one process, alternating, a new warehouse each time.

A benchmark, not a test: it prints the medians and asserts nothing. Figures: docs/benchmarks.md.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import simulator_process  # noqa: E402
from pipeline.api.auth import TokenAuth  # noqa: E402
from pipeline.api.client import DdsTaskCenterClient  # noqa: E402
from pipeline.api.windows import TimeWindow  # noqa: E402
from pipeline.simulator.server import DEFAULT_PROJECT_ID  # noqa: E402

CONCURRENCY = 12
# The child of the "imports" figure: argv[1] is "overlapped" or "sequential"; prints its seconds.
_IMPORTS_CHILD = """
import sys, threading, time
from bench.bench_overlap import client, window
started = time.perf_counter()
def fetch():
    for _ in client().iter_pages(window()):
        pass
def imports():
    import pandas, pyarrow, pipeline.sync, pipeline.running  # noqa: F401, E401
if sys.argv[1] == "overlapped":
    pages = threading.Thread(target=fetch)
    pages.start()
    imports()
    pages.join()
else:
    fetch()
    imports()
print(time.perf_counter() - started)
"""


def window() -> TimeWindow:
    """The 30 days ending yesterday."""
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    return TimeWindow.for_days(yesterday - timedelta(days=29), yesterday)


def client() -> DdsTaskCenterClient:
    return DdsTaskCenterClient(os.environ["BENCH_URL"], DEFAULT_PROJECT_ID, TokenAuth(os.environ["BENCH_TOKEN"]),
                               max_concurrency=CONCURRENCY)


def imports_seconds(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _IMPORTS_CHILD, mode], cwd=ROOT, env=os.environ.copy(),
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def load_seconds(mode: str, frame, unknown) -> float:
    from pipeline.warehouse.store import Warehouse

    warehouse = Warehouse(f"sqlite:///{tempfile.mkdtemp(prefix='dds-bench-overlap-')}/warehouse.db")
    with warehouse.transaction():
        pass  # the schema, made ready before the clock starts
    started = time.perf_counter()
    if mode == "overlapped":
        pages = threading.Thread(target=lambda: [None for _ in client().iter_pages(window())])
        pages.start()
        warehouse.upsert_latest(frame, unknown)
        pages.join()
    else:
        for _ in client().iter_pages(window()):
            pass
        warehouse.upsert_latest(frame, unknown)
    seconds = time.perf_counter() - started
    warehouse.dispose()
    return seconds


def fetched_rows():
    from pipeline.records.normalize import normalize_jobs
    from pipeline.records.precedence import latest_states

    records = [job for page in client().iter_pages(window()) for job in page.jobs]
    normalized = normalize_jobs(records, DEFAULT_PROJECT_ID, seen_at=datetime.now(timezone.utc))
    return latest_states(normalized.frame, normalized.unknown_mask())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs per figure (default 3)")
    parser.add_argument("--jobs", type=int, default=30_000, help="jobs over the 30 days (default 30,000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the simulator's delay per page (default 20)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.jobs < 30:
        parser.error("--rounds must be at least 1 and --jobs at least 30")
    token = secrets.token_urlsafe(16)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    with simulator_process(args.jobs // 30, 30, args.latency_ms, token) as url:
        os.environ.update(BENCH_URL=url, BENCH_TOKEN=token)
        frame, unknown = fetched_rows()
        figures = {("imports", mode): [] for mode in ("sequential", "overlapped")}
        figures.update({("load", mode): [] for mode in ("sequential", "overlapped")})
        for n in range(args.rounds):
            for mode in ("sequential", "overlapped") if n % 2 == 0 else ("overlapped", "sequential"):
                figures["imports", mode].append(imports_seconds(mode))
                figures["load", mode].append(load_seconds(mode, frame, unknown))
            print(f"  round {n + 1}: " + ", ".join(f"{what} {mode} {values[-1]:.2f} s"
                                                  for (what, mode), values in figures.items()), flush=True)
    print(f"\n{len(frame):,} jobs; median of {args.rounds} rounds, seconds from the fetch's start to the end of both")
    print(f"{'work beside the fetch':24}{'one after the other':>22}{'overlapped':>14}")
    for what in ("imports", "load"):
        sequential, overlapped = (statistics.median(figures[what, mode]) for mode in ("sequential", "overlapped"))
        print(f"{what:24}{sequential:>20.2f} s{overlapped:>12.2f} s")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
