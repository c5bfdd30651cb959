"""The ``dds-tasks`` command: ``demo`` runs the whole pipeline against the simulator in a folder of its own (and
shows it in Dagster's UI with ``--ui``), ``simulate`` serves the simulator, ``targets`` shows the projects a
deployment reads (DDS_TARGETS_FILE) after checking every setting, ``verify-parquet`` checks every day of the Parquet
snapshots against the warehouse (``--repair`` rewrites the bad ones from it), ``report`` writes a self-contained
HTML report of the warehouse, ``alerts test`` and ``alerts list`` try the alert destinations and list the alerts.

Each subcommand registers its handler with ``set_defaults(run=...)``: a handler takes the parsed arguments and
returns the exit code. A bad option or a configuration error is one line on stderr and exit code 2.
"""

import argparse
import sys

from pipeline.values import ConfigError


class _OneLineErrors(argparse.ArgumentParser):
    """Bad options are one line naming them (argparse's own message), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _run_demo(args: argparse.Namespace) -> int:
    if args.days < 1 or args.jobs_per_day < 1:
        raise ConfigError("--days and --jobs-per-day must be at least 1")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a TCP port (1..65535)")
    from pipeline.cli.demo import run_demo

    return run_demo(days=args.days, jobs_per_day=args.jobs_per_day, folder=args.dir,
                    ui_port=args.port if args.ui else None)


def _run_simulate(args: argparse.Namespace) -> int:
    from pipeline.cli import simulate as simulator_cli

    return simulator_cli.run(args)


def _print_targets(args: argparse.Namespace) -> int:
    import pandas as pd

    from pipeline.config import Deployment
    from pipeline.targets import TARGETS_FILE_VARIABLE, describe_targets

    settings = Deployment.from_env()
    if not settings.multi_target:
        print(f"{TARGETS_FILE_VARIABLE} is not set: one project, DDS_PROJECT_ID={settings.project_id or '(not set)'}")
        return 0
    rows = describe_targets(settings.targets, settings.max_concurrency, settings.credential_variables,
                            settings.max_rate)
    print(pd.DataFrame(rows).to_string(index=False))
    unusable = [row["target"] for row in rows if "unusable" in row["credentials"]]
    if unusable:
        print(f"dds-tasks: {len(unusable)} target(s) without usable credentials: {', '.join(unusable)}",
              file=sys.stderr)
    return 1 if unusable else 0


def _verify_parquet(args: argparse.Namespace) -> int:
    from pipeline.config import Deployment
    from pipeline.snapshots.s3 import is_s3_uri
    from pipeline.snapshots.store import ParquetStore
    from pipeline.snapshots.verify import verify_parquet
    from pipeline.warehouse.engine import parse_warehouse_url, sqlite_file
    from pipeline.warehouse.store import Warehouse

    settings = Deployment.from_env()
    url = parse_warehouse_url(settings.warehouse_url)
    database = sqlite_file(url) if url.get_backend_name() == "sqlite" else None
    if database is not None and not database.is_file():
        # Opening it would create an empty warehouse, against which every stored day would look wrong.
        raise ConfigError(f"DDS_WAREHOUSE_URL: the SQLite warehouse {str(database)!r} does not exist")
    s3 = settings.s3_options() if is_s3_uri(settings.parquet_root) else None
    store = ParquetStore(settings.parquet_root, s3=s3)
    warehouse = Warehouse(settings.warehouse_url)
    try:
        report = verify_parquet(warehouse, store, repair=args.repair)
    finally:
        warehouse.dispose()
    print(report.text())
    print(f"dds-tasks verify-parquet: {report.summary()}")
    return 1 if report.problems_remain else 0


def _add_verify_parquet(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify-parquet", help="check every day of the Parquet snapshots against the warehouse",
        description="Checks that every day the warehouse or DDS_PARQUET_ROOT holds reads, and equals the "
        "warehouse's rows of that day in every column, one row per job; prints one row per day and a summary. "
        "Exit status 0 when every day is ok (or repaired), 1 when problems remain.")
    verify.add_argument("--repair", action="store_true",
                        help="rewrite each bad day from the warehouse; its old files, and days only the snapshots "
                        "hold, are moved to {DDS_PARQUET_ROOT}/_quarantine, never deleted")
    verify.set_defaults(run=_verify_parquet)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    from pipeline.cli.demo import DEFAULT_FOLDER
    from pipeline.simulator import dataset

    demo = commands.add_parser(
        "demo", help="sync the last days from the bundled simulator through Dagster, into a folder of its own",
        description="Syncs the last days from the bundled DDS API simulator through Dagster into its own folder "
        "(never the configured DDS_DATA_DIR, DDS_WAREHOUSE_URL or DDS_PARQUET_ROOT); safe to run again.")
    demo.add_argument("--days", type=int, default=7, help="how many days up to yesterday to sync (default 7)")
    demo.add_argument("--jobs-per-day", type=int, default=dataset.JOBS_PER_DAY,
                      help=f"simulated jobs a day (default {dataset.JOBS_PER_DAY}, as `dds-tasks simulate`)")
    demo.add_argument("--dir", default=DEFAULT_FOLDER,
                      help=f"the demo's folder: its warehouse, Parquet files and Dagster home (default ./{DEFAULT_FOLDER})")
    demo.add_argument("--ui", action="store_true",
                      help="then open the demo in Dagster's UI (dg dev, with the simulator) until Ctrl-C")
    demo.add_argument("--port", type=int, default=3000,
                      help="with --ui: the UI's port on 127.0.0.1 (default 3000, or a free one when it is taken)")
    demo.set_defaults(run=_run_demo)


def _parser() -> argparse.ArgumentParser:
    from pipeline.cli import alerts as alerts_cli
    from pipeline.cli import report as report_cli
    from pipeline.cli import simulate as simulator_cli

    parser = _OneLineErrors(prog="dds-tasks", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_demo(commands)
    simulate = commands.add_parser("simulate", help="serve the DDS API simulator on 127.0.0.1")
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(run=_run_simulate)
    targets = commands.add_parser("targets", help="check the settings and list the targets of DDS_TARGETS_FILE")
    targets.set_defaults(run=_print_targets)
    _add_verify_parquet(commands)
    report = commands.add_parser("report", help="write a self-contained HTML report of the warehouse",
                                 description=report_cli.DESCRIPTION)
    report_cli.add_arguments(report)
    report.set_defaults(run=report_cli.run)
    alerts = commands.add_parser("alerts", help="test the alert destinations, or list the alerts sent and pending",
                                 description=alerts_cli.DESCRIPTION)
    alerts_cli.add_arguments(alerts)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from pipeline.memory import use_returning_allocator

    use_returning_allocator()
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"dds-tasks: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
