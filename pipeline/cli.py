"""The ``dds-tasks`` command: ``demo`` runs the whole pipeline against the simulator, ``simulate`` serves it,
``targets`` shows the projects a deployment reads (DDS_TARGETS_FILE) after checking every setting."""

import argparse
import sys

from pipeline.settings import ConfigError


def _parser() -> argparse.ArgumentParser:
    from pipeline.simulator import cli as simulator_cli

    parser = argparse.ArgumentParser(prog="dds-tasks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="sync the last days from the bundled simulator through Dagster")
    demo.add_argument("--days", type=int, default=7, help="how many days up to yesterday to sync (default 7)")
    demo.add_argument("--jobs-per-day", type=int, default=200, help="simulated jobs a day (default 200)")
    simulate = commands.add_parser("simulate", help="serve the DDS API simulator on 127.0.0.1")
    simulator_cli.add_arguments(simulate)
    commands.add_parser("targets", help="check the settings and list the targets of DDS_TARGETS_FILE")
    return parser


def _print_targets() -> int:
    import os

    import pandas as pd

    from pipeline.settings import Settings
    from pipeline.targets import TARGETS_FILE_VARIABLE, describe_targets

    settings = Settings.from_env()
    if not settings.targets:
        print(f"{TARGETS_FILE_VARIABLE} is not set: one project, DDS_PROJECT_ID={settings.project_id or '(not set)'}")
        return 0
    rows = describe_targets(settings.targets, settings.max_concurrency, os.environ, settings.max_rate)
    print(pd.DataFrame(rows).to_string(index=False))
    unusable = [row["target"] for row in rows if "unusable" in row["credentials"]]
    if unusable:
        print(f"dds-tasks: {len(unusable)} target(s) without usable credentials: {', '.join(unusable)}",
              file=sys.stderr)
    return 1 if unusable else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            if args.days < 1 or args.jobs_per_day < 1:
                raise ConfigError("--days and --jobs-per-day must be at least 1")
            from pipeline.demo import run_demo

            return run_demo(days=args.days, jobs_per_day=args.jobs_per_day)
        if args.command == "targets":
            return _print_targets()
        from pipeline.simulator import cli as simulator_cli

        return simulator_cli.run(args)
    except ConfigError as exc:
        print(f"dds-tasks: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
