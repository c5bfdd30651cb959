"""The ``dds-tasks`` command: ``demo`` runs the whole pipeline against the simulator, ``simulate`` serves it,
``targets`` shows the projects a deployment reads (DDS_TARGETS_FILE) after checking every setting,
``verify-parquet`` checks every day of the Parquet snapshots against the warehouse (``--repair`` rewrites the bad
ones from it)."""

import argparse
import sys

from pipeline.settings import ConfigError


class _OneLineErrors(argparse.ArgumentParser):
    """Bad options are one line naming them (argparse's own message), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    from pipeline.simulator import cli as simulator_cli

    parser = _OneLineErrors(prog="dds-tasks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="sync the last days from the bundled simulator through Dagster")
    demo.add_argument("--days", type=int, default=7, help="how many days up to yesterday to sync (default 7)")
    demo.add_argument("--jobs-per-day", type=int, default=200, help="simulated jobs a day (default 200)")
    simulate = commands.add_parser("simulate", help="serve the DDS API simulator on 127.0.0.1")
    simulator_cli.add_arguments(simulate)
    commands.add_parser("targets", help="check the settings and list the targets of DDS_TARGETS_FILE")
    verify = commands.add_parser(
        "verify-parquet", help="check every day of the Parquet snapshots against the warehouse",
        description="Checks that every day the warehouse or DDS_PARQUET_ROOT holds reads, and equals the "
        "warehouse's rows of that day in every column, one row per job; prints one row per day and a summary. "
        "Exit status 0 when every day is ok (or repaired), 1 when problems remain.")
    verify.add_argument("--repair", action="store_true",
                        help="rewrite each bad day from the warehouse; its old files, and days only the snapshots "
                        "hold, are moved to {DDS_PARQUET_ROOT}/_quarantine, never deleted")
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


def _verify_parquet(repair: bool) -> int:
    from pipeline.settings import Settings
    from pipeline.storage.engine import parse_warehouse_url, sqlite_file
    from pipeline.storage.parquet import ParquetStore
    from pipeline.storage.parquet_verify import verify_parquet
    from pipeline.storage.warehouse import Warehouse

    settings = Settings.from_env()
    url = parse_warehouse_url(settings.warehouse_url)
    database = sqlite_file(url) if url.get_backend_name() == "sqlite" else None
    if database is not None and not database.is_file():
        # Opening it would create an empty warehouse, against which every stored day would look wrong.
        raise ConfigError(f"DDS_WAREHOUSE_URL: the SQLite warehouse {str(database)!r} does not exist")
    warehouse = Warehouse(settings.warehouse_url)
    try:
        report = verify_parquet(warehouse, ParquetStore(settings.parquet_root), repair=repair)
    finally:
        warehouse.dispose()
    print(report.text())
    print(f"dds-tasks verify-parquet: {report.summary()}")
    return 1 if report.problems_remain else 0


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
        if args.command == "verify-parquet":
            return _verify_parquet(args.repair)
        from pipeline.simulator import cli as simulator_cli

        return simulator_cli.run(args)
    except ConfigError as exc:
        print(f"dds-tasks: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
