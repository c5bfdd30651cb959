"""`dds-tasks simulate`: serves the simulator on 127.0.0.1 for trying things out by hand."""

import argparse
import shlex
import sys
import threading
from datetime import timedelta

from pipeline.simulator.server import DEFAULT_PROJECT_ID, DdsSimulator, SimulatorConfig

DEFAULT_PORT = 8930


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `dds-tasks simulate` to its (sub)parser."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated jobs (default 7)")
    parser.add_argument("--jobs-per-day", type=int, default=40, help="jobs per project and day, about (default 40)")
    parser.add_argument("--history-days", type=int, default=40, help="days of jobs generated before now (default 40)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each jobs answer (default 0)")
    parser.add_argument("--no-total-count", action="store_true", help="omit total_count, as the provider may")
    parser.add_argument("--project-id", action="append", dest="project_ids", metavar="PROJECT_ID",
                        help=f"a served project id, repeatable (default {DEFAULT_PROJECT_ID})")
    parser.add_argument("--token", default="sim-token",
                        help="the X-Auth-Token to require; an empty string turns authentication off "
                             "(default sim-token)")


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator configuration the parsed options describe; ValueError names a bad option."""
    if args.latency_ms < 0:
        raise ValueError(f"--latency-ms must be >= 0, got {args.latency_ms}")
    return SimulatorConfig(seed=args.seed, project_ids=tuple(args.project_ids or (DEFAULT_PROJECT_ID,)),
                           token=args.token or None, jobs_per_day=args.jobs_per_day,
                           history_days=args.history_days, include_total_count=not args.no_total_count,
                           latency_s=args.latency_ms / 1000)


def usage_text(sim: DdsSimulator) -> str:
    """What to tell the user once serving: where, with what credentials, and a request to paste."""
    end = sim.store.now
    start = end - timedelta(days=1)
    # The offset's `+` must travel as %2B: a bare `+` in a query string decodes to a space.
    window = (f"start_time={start:%Y-%m-%dT%H:%M:%S}%2B0000&end_time={end:%Y-%m-%dT%H:%M:%S}%2B0000"
              "&offset=0&limit=10")
    token = sim.config.token
    curl = ["curl", "-sS"] + (["-H", f"X-Auth-Token: {token}"] if token else [])
    curl.append(f"{sim.url}/v3.1/{sim.project_id}/jobs?{window}")
    return "\n".join([
        f"DDS API simulator serving {sim.url}",
        f"  project id(s): {', '.join(sim.config.project_ids)}",
        f"  X-Auth-Token:  {token or '(none: authentication off)'}",
        f"  clock (frozen): {sim.store.now.isoformat()}",
        f"  try: {shlex.join(curl)}",
        "Press Ctrl-C to stop.",
    ])


def run(args: argparse.Namespace) -> int:
    """Serves until Ctrl-C; returns the process exit code."""
    try:
        sim = DdsSimulator(config_from_args(args), port=args.port)
        sim.start()
    except (ValueError, OSError) as exc:
        print(f"dds-tasks simulate: {exc}", file=sys.stderr)
        return 2
    print(usage_text(sim), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.simulator.cli`, the same as `dds-tasks simulate`."""
    parser = argparse.ArgumentParser(prog="dds-tasks simulate", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
