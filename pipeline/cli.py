"""The ``dds-tasks`` command: ``demo`` runs the whole pipeline against the simulator, ``simulate`` serves it."""

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            if args.days < 1 or args.jobs_per_day < 1:
                raise ConfigError("--days and --jobs-per-day must be at least 1")
            from pipeline.demo import run_demo

            return run_demo(days=args.days, jobs_per_day=args.jobs_per_day)
        from pipeline.simulator import cli as simulator_cli

        return simulator_cli.run(args)
    except ConfigError as exc:
        print(f"dds-tasks: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
