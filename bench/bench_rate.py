"""The request-rate benchmark of issue 14: a fetch against a gateway quota, adaptive beside today's fixed concurrency.

    .venv/bin/python bench/bench_rate.py [--limits 5,10,50] [--latencies-ms 20,100,300] [--concurrency 12]
        [--pages 5:120,10:150,50:600,none:300] [--no-fixed] [--json out.json]

For each latency and quota (and without one), a simulator in a process of its own answers 10 days of jobs after that
latency, with ``--rate-limit N`` (a token bucket of one second per user; the rest answered 429 APIG.0308 with
Retry-After). ``DdsTaskCenterClient.fetch_jobs`` reads the window once with the adaptive rate, then (after the bucket
has refilled) once with ``FixedConcurrencyClient``: ``--concurrency`` requests in flight whatever the answers, the
behaviour before issue 14. Each quota gets its own simulator, so every adaptive run starts knowing nothing, as a new process does.

Printed per run: seconds, pace against the floor (pages / quota, or pages x latency / concurrency when that is
longer), the share of requests answered 429, the requests a second sent, the range of requests allowed in flight and
the pace allowed at the end. Issue 14's targets: at most 1.15x pages / quota and 5% throttled under a quota; without
one, at most 1.5x pages x latency / concurrency. A benchmark, not a test: nothing asserts a time. Figures and method:
docs/benchmarks.md.
"""

import argparse
import json
import logging
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_sync import machine_pace_ms  # noqa: E402
from bench.processes import simulator_process  # noqa: E402
from pipeline.api.auth import TokenAuth  # noqa: E402
from pipeline.api.client import DdsTaskCenterClient, FetchStats  # noqa: E402
from pipeline.api.errors import DdsApiError  # noqa: E402
from pipeline.api.ratelimit import RegionLimiter  # noqa: E402
from pipeline.config import DEFAULT_MAX_CONCURRENCY, MAX_CONCURRENCY_LIMIT  # noqa: E402
from pipeline.simulator.server import DEFAULT_PROJECT_ID  # noqa: E402
from pipeline.sync import fetch_window  # noqa: E402

DAYS = 10
MAX_PACE_UNDER_QUOTA, MAX_THROTTLED_SHARE, MAX_PACE_WITHOUT_QUOTA = 1.15, 0.05, 1.5
# The gateway's bucket holds one second of quota: after this pause the fixed run meets it full, as the adaptive did.
REFILL_SECONDS = 1.5
NO_LIMIT = "none"


class FixedConcurrencyClient(DdsTaskCenterClient):
    """The client with a limiter of its own that keeps ``max_concurrency`` in flight (and ``max_rate``, if any)
    whatever the answers: the fixed behaviour the adaptive rate is compared with."""

    def _limiter_for(self, key: str) -> RegionLimiter:
        return RegionLimiter(key, max_rate=self.max_rate, max_concurrency=self.max_concurrency, adaptive=False)


@dataclass
class Run:
    """One fetch: ``mode`` adaptive or fixed, under ``limit`` requests/s (None: no quota) at ``latency_ms``."""

    mode: str
    limit: float | None
    latency_ms: float
    pages: int
    requests: int
    throttled: int
    seconds: float
    floor_seconds: float
    concurrency_min: int
    concurrency_max: int
    rate_allowed: float | None
    # Why the fetch failed (a page out of retries), or None: today's fixed concurrency can exhaust them.
    failed: str | None = None

    @property
    def pace(self) -> float:
        return self.seconds / self.floor_seconds

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    def met(self) -> bool:
        if self.failed:
            return False
        if self.limit is None:
            return self.pace <= MAX_PACE_WITHOUT_QUOTA
        return self.pace <= MAX_PACE_UNDER_QUOTA and self.throttled_share <= MAX_THROTTLED_SHARE


def parse_pages(text: str) -> dict[str, int]:
    pages = {}
    for part in text.split(","):
        limit, _, count = part.partition(":")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--pages entry {part!r} is not LIMIT:PAGES such as 10:150")
        pages[limit.strip()] = int(count)
    return pages


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--limits", default="5,10,50", help="quotas in requests/s per user, comma-separated (default 5,10,50)")
    add("--latencies-ms", default="20,100,300", help="latencies per request, comma-separated (default 20,100,300)")
    add("--concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY,
        help=f"DDS_MAX_CONCURRENCY of both modes (default {DEFAULT_MAX_CONCURRENCY})")
    add("--pages", default="5:120,10:150,50:600,none:300",
        help="pages fetched per quota (none: without one); fewer at low quotas keeps the grid within minutes")
    add("--no-fixed", action="store_true", help="skip the runs at today's fixed concurrency")
    add("--json", metavar="PATH", type=Path, help="also write the runs as JSON to PATH")
    args = parser.parse_args(argv)
    try:
        args.limits = [float(value) for value in args.limits.split(",")]
        args.latencies_ms = [float(value) for value in args.latencies_ms.split(",")]
        args.pages = parse_pages(args.pages)
    except ValueError as exc:
        parser.error(str(exc))
    missing = [key for key in [*(f"{limit:g}" for limit in args.limits), NO_LIMIT] if key not in args.pages]
    problems = [text for bad, text in (
        (any(limit <= 0 for limit in args.limits), "--limits must be above 0"),
        (any(latency < 0 for latency in args.latencies_ms), "--latencies-ms must be >= 0"),
        (not 1 <= args.concurrency <= MAX_CONCURRENCY_LIMIT,
         f"--concurrency must be within 1..{MAX_CONCURRENCY_LIMIT}"),
        (bool(missing), f"--pages has no count for {', '.join(missing)}"),
        (args.json is not None and not args.json.parent.is_dir(),
         f"--json: no folder {args.json and args.json.parent}"),
    ) if bad]
    if problems:
        parser.error(problems[0])
    return args


def fetch(url: str, token: str, limit: float | None, latency_ms: float, concurrency: int, adaptive: bool) -> Run:
    days = [datetime.now(timezone.utc).date() - timedelta(days=n) for n in range(DAYS, 0, -1)]
    window = fetch_window(days, datetime.now(timezone.utc))
    stats, failed = FetchStats(), None
    client_type = DdsTaskCenterClient if adaptive else FixedConcurrencyClient
    with client_type(url, DEFAULT_PROJECT_ID, TokenAuth(token), max_concurrency=concurrency) as client:
        started = time.perf_counter()
        try:
            for _ in client.iter_pages(window, stats=stats):
                pass
        except DdsApiError as exc:
            failed = str(exc).split(" (last:")[0]
        seconds = time.perf_counter() - started
    # A quota cannot be kept faster than the window lets requests through: the longer of the two is the floor.
    floor = max(stats.pages / limit if limit else 0.0, stats.pages * latency_ms / 1000 / concurrency)
    return Run("adaptive" if adaptive else "fixed", limit, latency_ms, stats.pages, stats.requests,
               stats.pacing.throttled, seconds, floor, stats.pacing.window_min or 0, stats.pacing.window_max or 0,
               stats.pacing.rate, failed)


def describe(run: Run) -> str:
    allowed = "none" if run.rate_allowed is None else f"{run.rate_allowed:.1f}/s"
    verdict = "met" if run.met() else f"FAILED: {run.failed}" if run.failed else "NOT MET"
    return (f"{run.mode:<8} {run.seconds:6.2f} s = {run.pace:4.2f}x floor {run.floor_seconds:5.2f} s, "
            f"{run.throttled:3d} of {run.requests:4d} requests 429 ({run.throttled_share:5.1%}), "
            f"{run.requests / run.seconds:5.1f} req/s, in flight {run.concurrency_min}-{run.concurrency_max}, "
            f"allowed at the end {allowed}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Every 429 retried is a warning line of the client's; the fixed runs meet hundreds of them.
    logging.getLogger("pipeline.api.retry").setLevel(logging.ERROR)
    token = secrets.token_urlsafe(16)
    runs: list[Run] = []
    paces = [machine_pace_ms()]
    started = time.perf_counter()
    print(f"bench_rate: {os.cpu_count()} CPUs, machine pace {paces[0]:.0f} ms, concurrency {args.concurrency}")
    for latency in args.latencies_ms:
        for limit in [*args.limits, None]:
            pages = args.pages[f"{limit:g}" if limit else NO_LIMIT]
            quota = ["--rate-limit", f"{limit:g}"] if limit else []
            label = f"{limit:g}/s" if limit else "no quota"
            print(f"\nquota {label}, latency {latency:g} ms, about {pages} pages", flush=True)
            with simulator_process(pages * 100 // DAYS, DAYS, latency, token, quota) as url:
                modes = [True] if args.no_fixed else [True, False]
                for adaptive in modes:
                    if not adaptive:
                        time.sleep(REFILL_SECONDS)
                    runs.append(fetch(url, token, limit, latency, args.concurrency, adaptive))
                    print("  " + describe(runs[-1]), flush=True)
            paces.append(machine_pace_ms())
    print_grid(runs)
    print(f"\nmachine pace {min(paces):.0f}-{max(paces):.0f} ms over the run; the grid took "
          f"{time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "cpus": os.cpu_count(), "concurrency": args.concurrency, "machine_pace_ms": paces,
            "runs": [{**asdict(run), "pace": run.pace, "throttled_share": run.throttled_share, "met": run.met()}
                     for run in runs],
        }, indent=2))
    return 0


def print_grid(runs: list[Run]) -> None:
    """Markdown: one row per (quota, latency), the adaptive run beside the fixed one."""
    fixed = {(run.limit, run.latency_ms): run for run in runs if run.mode == "fixed"}
    print("\n| quota | latency | pages | floor | adaptive: pace | 429s | in flight | fixed: pace | 429s | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in (run for run in runs if run.mode == "adaptive"):
        other = fixed.get((run.limit, run.latency_ms))
        against = (f"{'failed after ' if other.failed else ''}{other.pace:.2f}x | {other.throttled_share:.1%}"
                   if other else " | ")
        target = (f"<= {MAX_PACE_UNDER_QUOTA}x, <= {MAX_THROTTLED_SHARE:.0%}" if run.limit
                  else f"<= {MAX_PACE_WITHOUT_QUOTA}x")
        print(f"| {f'{run.limit:g}/s' if run.limit else 'none'} | {run.latency_ms:g} ms | {run.pages} | "
              f"{run.floor_seconds:.2f} s | {run.pace:.2f}x | {run.throttled_share:.1%} | "
              f"{run.concurrency_min}-{run.concurrency_max} | {against} | {target}: "
              f"{'met' if run.met() else 'NOT MET'} |")


if __name__ == "__main__":
    sys.exit(main())
