"""`dds-tasks simulate`: serves the simulator on 127.0.0.1 for trying things out by hand.

With ``--ak/--sk`` it verifies AK/SK-signed requests, with ``--iam-user/--iam-password/--iam-domain`` it serves
a fake IAM login at ``POST /v3/auth/tokens``; once serving it prints the variables that point the pipeline at
it. The secret key and the password are never printed.
"""

import argparse
import shlex
import sys
import threading
from datetime import timedelta

from pipeline.cli.shellcommands import venv_command
from pipeline.simulator import dataset
from pipeline.simulator.answers import BROKEN_ANSWERS
from pipeline.simulator.auth import SimulatorAuthenticator
from pipeline.simulator.ratelimit import RateSchedule
from pipeline.simulator.server import DEFAULT_PROJECT_ID, DdsSimulator, SimulatorConfig

DEFAULT_PORT = 8930


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `dds-tasks simulate` to its (sub)parser."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    # The defaults serve the jobs `dds-tasks demo` syncs (pipeline/simulator/dataset.py).
    parser.add_argument("--seed", type=int, default=dataset.SEED,
                        help=f"seed of the generated jobs (default {dataset.SEED}, the demo's)")
    parser.add_argument("--jobs-per-day", type=int, default=dataset.JOBS_PER_DAY,
                        help=f"jobs per project and day, about (default {dataset.JOBS_PER_DAY}, the demo's)")
    parser.add_argument("--history-days", type=int, default=dataset.HISTORY_DAYS,
                        help=f"days of jobs generated before now (default {dataset.HISTORY_DAYS})")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each jobs answer (default 0)")
    parser.add_argument("--no-total-count", action="store_true", help="omit total_count, as the provider may")
    throttle = parser.add_mutually_exclusive_group()
    throttle.add_argument("--rate-limit", type=float, metavar="N",
                          help="the gateway's quota: N requests a second per user (token or access key), the rest "
                               "answered 429 APIG.0308 with Retry-After (default: no quota)")
    throttle.add_argument("--rate-limit-schedule", metavar="SECOND:N,...",
                          help="a quota that changes, e.g. 0:50,10:5,20:50 (50/s, from second 10 on 5/s, from "
                               "second 20 on 50/s), counted from the first jobs request")
    parser.add_argument("--project-id", action="append", dest="project_ids", metavar="PROJECT_ID",
                        help=f"a served project id, repeatable (default {DEFAULT_PROJECT_ID})")
    parser.add_argument("--token", default="sim-token",
                        help="the X-Auth-Token to require; an empty string turns authentication off "
                             "(default sim-token); with --ak or --iam-user, it only removes the static token")
    live = parser.add_argument_group("live mode: jobs keep being created while clients page (docs/reliability.md)")
    live.add_argument("--live", type=int, default=0, metavar="N",
                      help="before answering each jobs request, create N new jobs (listed first: newest first) "
                           "and move the clock on (default 0: off, the clock frozen)")
    live.add_argument("--live-seconds", type=int, default=1, metavar="S",
                      help="with --live, the seconds the clock moves on per jobs request (default 1)")
    trouble = parser.add_argument_group("answers the API should never give, and outages (docs/reliability.md)")
    trouble.add_argument("--broken-answer", choices=BROKEN_ANSWERS,
                         help="break every jobs answer so: jobs null, jobs not a list, records that are not objects, "
                              "more records than the limit")
    trouble.add_argument("--total-count", type=int, metavar="N",
                         help="every answer reports total_count N (e.g. 10000000), whatever the window holds")
    trouble.add_argument("--degraded-fraction", type=float, default=0.0, metavar="F",
                         help="this share of the jobs (0..1, seeded by --seed) lacks a field or carries ended_at "
                              "'not-a-time' (default 0)")
    trouble.add_argument("--nested-errors", action="store_true",
                         help='answer errors as {"error": {"code", "message"}} instead of {"error_code", "error_msg"}')
    outage = trouble.add_mutually_exclusive_group()
    outage.add_argument("--down-for", type=float, metavar="SECONDS",
                        help="every jobs request answers 503 for this long after start-up")
    outage.add_argument("--storm", type=float, metavar="SECONDS",
                        help="about half the jobs answers fail (429, 500, HTML 502, resets, cut bodies, a 70 s stall "
                             "every 50 requests) for this long after start-up")
    credentials = parser.add_argument_group("AK/SK signing and IAM users (docs/authentication.md)")
    credentials.add_argument("--ak", help="an access key whose signed requests are accepted (needs --sk)")
    credentials.add_argument("--sk", help="the secret key of --ak (never printed)")
    credentials.add_argument("--iam-user", help="an IAM user that may log in at POST /v3/auth/tokens "
                                                "(needs --iam-password and --iam-domain)")
    credentials.add_argument("--iam-password", help="the password of --iam-user (never printed)")
    credentials.add_argument("--iam-domain", help="the account (domain) name of --iam-user")
    credentials.add_argument("--iam-token-minutes", type=float, default=24 * 60,
                             help="how long an issued IAM token is accepted (default 1440, as the provider's)")


def _authenticator_from_args(args: argparse.Namespace) -> SimulatorAuthenticator | None:
    """The gateway for --ak/--sk and --iam-* (None without them); ValueError names an incomplete set."""
    if bool(args.ak) != bool(args.sk):
        raise ValueError("--ak and --sk go together: give both or neither")
    iam = (args.iam_user, args.iam_password, args.iam_domain)
    if any(iam) and not all(iam):
        raise ValueError("--iam-user, --iam-password and --iam-domain go together: give all three or none")
    if args.iam_token_minutes < 0:
        raise ValueError(f"--iam-token-minutes must be >= 0, got {args.iam_token_minutes}")
    if not args.ak and not args.iam_user:
        return None
    return SimulatorAuthenticator(
        tokens=[args.token] if args.token else [],
        keys={args.ak: args.sk} if args.ak else None,
        iam_users={args.iam_user: (args.iam_password, args.iam_domain)} if args.iam_user else None,
        token_lifetime=timedelta(minutes=args.iam_token_minutes),
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator configuration the parsed options describe; ValueError names a bad option."""
    if args.latency_ms < 0:
        raise ValueError(f"--latency-ms must be >= 0, got {args.latency_ms}")
    for option, value in (("--live", args.live), ("--live-seconds", args.live_seconds)):
        if value < 0:
            raise ValueError(f"{option} must be >= 0, got {value}")
    gateway = _authenticator_from_args(args)
    quota = args.rate_limit if args.rate_limit is not None else args.rate_limit_schedule
    return SimulatorConfig(seed=args.seed, project_ids=tuple(args.project_ids or (DEFAULT_PROJECT_ID,)),
                           token=args.token or None, jobs_per_day=args.jobs_per_day,
                           history_days=args.history_days, include_total_count=not args.no_total_count,
                           latency_s=args.latency_ms / 1000, authenticator=gateway,
                           extra_routes=gateway.routes() if gateway else (), broken_answer=args.broken_answer,
                           reported_total_count=args.total_count, degraded_fraction=args.degraded_fraction,
                           error_shape="nested" if args.nested_errors else "flat", down_for_seconds=args.down_for,
                           storm_seconds=args.storm,
                           rate_limit=None if quota is None else RateSchedule.of(quota).steps,
                           live_jobs_per_request=args.live, live_seconds_per_request=args.live_seconds)


def pipeline_instructions(sim: DdsSimulator, args: argparse.Namespace) -> list[str]:
    """The shell lines that point the pipeline at ``sim``: one ``export`` line per way of authenticating.

    The secret key and the password appear as placeholders: they were typed by the user and stay out of
    terminals and logs.
    """
    last = sim.store.now.date() - timedelta(days=1)
    ways = []
    if args.ak:
        ways.append((shlex.join(["export", f"HUAWEICLOUD_SDK_AK={args.ak}", "HUAWEICLOUD_SDK_SK=<your --sk>"]),
                     "AK/SK signing: the method for schedules"))
    if args.iam_user:
        ways.append((shlex.join(["export", f"DDS_IAM_ENDPOINT={sim.url}", f"DDS_IAM_USERNAME={args.iam_user}",
                                 f"DDS_IAM_DOMAIN={args.iam_domain}", "DDS_IAM_PASSWORD=<your --iam-password>"]),
                     f"IAM user: tokens live {args.iam_token_minutes:g} min, fetched again as needed"))
    if sim.config.token:
        ways.append((shlex.join(["export", f"DDS_AUTH_TOKEN={sim.config.token}"]),
                     "static token: the real ones expire within 24 h, not for schedules"))
    lines = ["Point the pipeline at it:",
             "  " + shlex.join(["export", f"DDS_ENDPOINT={sim.url}", f"DDS_PROJECT_ID={sim.project_id}"])]
    if ways:
        lines.append("  and one way of authenticating:")
        lines.extend(f"  {line}   # {why}" for line, why in ways)
    lines.append(f"  then: {venv_command('dg')} launch --assets dds_jobs,dds_jobs_parquet --partition-range {last - timedelta(days=2)}...{last}")
    return lines


def trouble_text(config: SimulatorConfig) -> str | None:
    """The answers the API should never give and the outage this configuration serves, in one line, or None."""
    modes = [
        f"every jobs answer broken ({config.broken_answer})" if config.broken_answer else "",
        f"total_count always {config.reported_total_count}" if config.reported_total_count is not None else "",
        f"{config.degraded_fraction:.0%} of the jobs degraded" if config.degraded_fraction else "",
        "errors in the nested shape" if config.error_shape == "nested" else "",
        f"down (503) for {config.down_for_seconds:g} s" if config.down_for_seconds else "",
        f"a storm for {config.storm_seconds:g} s" if config.storm_seconds else "",
    ]
    shown = [mode for mode in modes if mode]
    return "  trouble:       " + "; ".join(shown) if shown else None


def usage_text(sim: DdsSimulator, args: argparse.Namespace | None = None) -> str:
    """What to tell the user once serving: where, with what credentials, a request to paste and, given the
    parsed options, how to point the pipeline at it."""
    end = sim.store.now
    start = end - timedelta(days=1)
    # The offset's `+` must travel as %2B: a bare `+` in a query string decodes to a space.
    window = (f"start_time={start:%Y-%m-%dT%H:%M:%S}%2B0000&end_time={end:%Y-%m-%dT%H:%M:%S}%2B0000"
              "&offset=0&limit=10")
    token = sim.config.token
    secured = args is not None and bool(args.ak or args.iam_user)
    curl = ["curl", "-sS"] + (["-H", f"X-Auth-Token: {token}"] if token else [])
    curl.append(f"{sim.url}/v3.1/{sim.project_id}/jobs?{window}")
    return "\n".join([
        f"DDS API simulator serving {sim.url}",
        f"  project id(s): {', '.join(sim.config.project_ids)}",
        f"  X-Auth-Token:  {token or ('(none)' if secured else '(none: authentication off)')}",
        f"  clock ({'live' if sim.live.on else 'frozen'}): {sim.store.now.isoformat()}",
        *([f"  {sim.live.describe()}"] if sim.live.on else []),
        *filter(None, [trouble_text(sim.config)]),
        *([f"  rate limit: {RateSchedule(sim.config.rate_limit)}"] if sim.config.rate_limit else []),
        f"  try: {shlex.join(curl)}",
        *(pipeline_instructions(sim, args) if args is not None else []),
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
    print(usage_text(sim, args), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.cli.simulate`, the same as `dds-tasks simulate`."""
    parser = argparse.ArgumentParser(prog="dds-tasks simulate", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
