"""What our code costs over Dagster's own, issue 23 item 10: loading the definitions, and a 30-day sync run.

    .venv/bin/python bench/bench_overhead.py [--rounds 7] [--jobs 30000] [--days 30] [--latency-ms 20]
        [--skip-load] [--skip-sync]

- load: ``dagster definitions validate -m pipeline.definitions`` beside the same command on a one-asset project
  (bench/one_asset_definitions.py); target: at most 0.4 s more.
- sync: the contract's ``dagster asset materialize ... --partition-range`` of the --days days ending yesterday
  against the simulator (``--latency-ms`` per request, in a process of its own) beside the same command on no-op
  assets of the same shape (bench/noop_definitions.py); target: at most 0.8 s more. Each sync run starts from an
  empty data directory and Dagster instance.

Ours and Dagster's alternate, round after round, so a slow spell of the shared machine falls on both; the table gives
the median of the rounds (wall and CPU seconds) and the median of the per-round differences. A benchmark, not a
test: nothing asserts a time. Figures and method: docs/benchmarks.md.
"""

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import TimedRun, dagster_env, simulator_process, sync_command, timed_run  # noqa: E402

MAX_LOAD_OVERHEAD_S, MAX_SYNC_OVERHEAD_S = 0.4, 0.8


def validate_command(module: str) -> list[str]:
    return [sys.executable, "-m", "dagster", "definitions", "validate", "-m", module]


def alternate(rounds: int, ours, dagster) -> list[tuple[TimedRun, TimedRun]]:
    """``rounds`` pairs (ours, Dagster's floor), the floor first in even rounds and second in odd ones."""
    pairs = []
    for n in range(rounds):
        if n % 2:
            theirs = dagster()
            pairs.append((ours(), theirs))
        else:
            pairs.append((ours(), dagster()))
        print(f"  round {n + 1}: ours {pairs[-1][0].seconds:.2f} s, Dagster's {pairs[-1][1].seconds:.2f} s", flush=True)
    return pairs


def table_rows(label: str, pairs: list[tuple[TimedRun, TimedRun]], target: float) -> list[tuple[str, ...]]:
    median = statistics.median
    ours, floor = median(p[0].seconds for p in pairs), median(p[1].seconds for p in pairs)
    extra = median(p[0].seconds - p[1].seconds for p in pairs)
    cpu_extra = median(p[0].cpu_seconds - p[1].cpu_seconds for p in pairs)
    return [(label, f"{ours:.2f} s", f"{floor:.2f} s", f"{extra:+.2f} s", f"{cpu_extra:+.2f} s",
             f"<= +{target} s", "met" if extra <= target else "NOT MET")]


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("figure (median of rounds)", "ours", "Dagster's", "extra wall", "extra CPU", "target", "verdict")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="pairs of runs per figure (default 7)")
    parser.add_argument("--jobs", type=int, default=30_000, help="jobs over the days (default 30,000)")
    parser.add_argument("--days", type=int, default=30, help="days of the sync, ending yesterday (default 30)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the simulator's delay per page (default 20)")
    parser.add_argument("--skip-load", action="store_true", help="no load figure")
    parser.add_argument("--skip-sync", action="store_true", help="no sync figure")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.jobs < 1 or not 1 <= args.days <= 30:
        parser.error("--rounds and --jobs must be at least 1, --days 1 to 30")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="dds-bench-overhead-"))
    token, counter = secrets.token_urlsafe(16), iter(range(10**6))
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    days = [yesterday - timedelta(days=n) for n in reversed(range(args.days))]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    try:
        def env_for(url: str) -> dict[str, str]:
            run = scratch / str(next(counter))
            return dagster_env(url, token, run / "data", run / "home", 12)

        if not args.skip_load:
            print("loading the definitions (dagster definitions validate):", flush=True)
            env = env_for("http://127.0.0.1:9")  # never called: validating makes no request
            pairs = alternate(args.rounds, lambda: timed_run(validate_command("pipeline.definitions"), env),
                              lambda: timed_run(validate_command("bench.one_asset_definitions"), env))
            rows += table_rows("load: definitions validate vs one asset", pairs, MAX_LOAD_OVERHEAD_S)
        if not args.skip_sync:
            print(f"{args.days}-day sync, {args.jobs:,} jobs, {args.latency_ms:g} ms a page (asset materialize):",
                  flush=True)
            with simulator_process(args.jobs // args.days, args.days, args.latency_ms, token) as url:
                pairs = alternate(args.rounds, lambda: timed_run(sync_command("pipeline.definitions", days), env_for(url)),
                                  lambda: timed_run(sync_command("bench.noop_definitions", days), env_for(url)))
            rows += table_rows(f"sync: {args.days} days vs no-op assets", pairs, MAX_SYNC_OVERHEAD_S)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print_table(rows)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
