"""``dds-tasks report``: one self-contained HTML report of the warehouse, for a period and optionally one project.

The period is ``--days N`` UTC days up to ``--until`` (default: yesterday, the last day the daily sync has
completed), or ``--since D`` to ``--until D``; without ``--days`` or ``--since``, the days synced (of the last
DEFAULT_DAYS up to ``--until``, see pipeline/report/synced_days.py). Every option is checked before the warehouse
is read.
"""

import argparse
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.report.period import (
    DEFAULT_DAYS,
    MAX_PERIOD_DAYS,
    ReportPeriod,
    period_ending,
)
from pipeline.config import ConfigError, Deployment, check_writable_folder, parse_day
from pipeline.snapshots.s3 import S3Location, is_s3_uri
from pipeline.warehouse.engine import SQLITE, parse_warehouse_url, sqlite_file

if TYPE_CHECKING:
    from pipeline.warehouse.store import Warehouse


DESCRIPTION = ("Write one self-contained HTML report of the warehouse (it opens offline): jobs per day by status, "
               "failure rates, durations, backups, Running jobs and sync coverage, for a period of UTC days.")


class OptionError(ValueError):
    """An option, or a combination of them, that cannot be used; the message is one line naming it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dds-tasks report`` on its (sub)parser."""
    period = parser.add_argument_group("period (UTC days of the jobs' creation)")
    period.add_argument("--days", type=_whole_days,
                        help=f"this many days up to --until (default: the days synced, of the last {DEFAULT_DAYS})")
    period.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day (instead of --days)")
    period.add_argument("--until", type=_day, metavar="YYYY-MM-DD",
                        help="last day (default: yesterday, or today when a sync has stored part of it)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--project", metavar="PROJECT_ID", help="only this project's jobs (default: every project)")
    scope.add_argument("--target", metavar="NAME", help="only the jobs of this target of DDS_TARGETS_FILE")
    parser.add_argument("--out", metavar="PATH",
                        help="the HTML file to write, or a folder for it, or s3://bucket/key "
                             "(default: DDS_DATA_DIR/reports/dds-jobs-report-<until>.html)")


def run(args: argparse.Namespace) -> int:
    """Write the report the options ask for and print where it went and its headline figures."""
    from pipeline.report.build import report_scope, write_report
    from pipeline.report.synced_days import synced_period

    now = datetime.now(timezone.utc)
    try:
        period = period_of(args, now)
    except OptionError as exc:
        print(f"dds-tasks report: error: {exc}", file=sys.stderr)
        return 2
    settings = Deployment.from_env()
    scope = report_scope(settings, args.project, args.target)
    label = args.target or args.project
    # --out is checked before the warehouse is read, with the days synced still unknown (they name the file).
    destination = _destination(args.out, settings, period or period_ending(args.until or now.date(), 1), label)
    warehouse = _existing_warehouse(settings.warehouse_url)
    try:
        if period is None:
            period = synced_period(warehouse, scope, now, args.until)
            destination = _destination(args.out, settings, period, label)
        written = write_report(warehouse, period, scope, destination, now,
                               s3=settings.s3_options() if is_s3_uri(destination) else None)
    finally:
        warehouse.dispose()
    print(f"report written: {written.location} ({written.size_bytes / 1024:,.0f} KB)")
    for name, value in written.figures.headline().items():
        print(f"  {name}: {value}")
    return 0


def period_of(args: argparse.Namespace, now: datetime) -> ReportPeriod | None:
    """The period the options name, None for the days synced (neither --days nor --since); OptionError for a
    contradictory or out-of-range one."""
    today = now.date()
    if args.until is not None and args.until > today:
        raise OptionError(f"--until {args.until} is after today ({today}, UTC): no job is created there yet")
    if args.since is not None and args.days is not None:
        raise OptionError("--since and --days both set the period's start: give one of them")
    last_day = args.until or today - timedelta(days=1)
    if args.since is None:
        return None if args.days is None else period_ending(last_day, args.days)
    if args.since > last_day:
        raise OptionError(f"--since {args.since} is after the period's last day {last_day}")
    try:
        return ReportPeriod(args.since, last_day)
    except ValueError as exc:
        raise OptionError(f"--since {args.since} to {last_day}: {exc}") from None


def _destination(out: str | None, settings: Deployment, period: ReportPeriod, filter_label: str | None) -> str:
    from pipeline.report.build import REPORTS_FOLDER, report_file_name

    name = report_file_name(period.last_day, filter_label)
    if out is not None and is_s3_uri(out):
        destination = out + name if out.endswith("/") else out
        try:
            S3Location.parse(destination, "--out")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        settings.s3_options()
        return destination
    path = Path(out) if out else settings.data_dir / REPORTS_FOLDER / name
    if path.is_dir():
        path = path / name
    check_writable_folder(path.parent, "--out" if out else "DDS_DATA_DIR")
    return str(path)


def _existing_warehouse(url: str) -> "Warehouse":
    """The warehouse to read; a SQLite file that does not exist is an error (a report creates no warehouse)."""
    from pipeline.warehouse.store import Warehouse

    parsed = parse_warehouse_url(url)
    database = sqlite_file(parsed) if parsed.get_backend_name() == SQLITE else None
    if database is not None and not database.is_file():
        raise ConfigError(f"no warehouse at {database}: nothing is synced yet (run a sync, or dds-tasks demo, first)")
    return Warehouse(url)


def _day(text: str) -> date:
    try:
        return parse_day(text, "date")
    except ConfigError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from None


def _whole_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_PERIOD_DAYS:
        raise argparse.ArgumentTypeError(f"{days} is outside 1..{MAX_PERIOD_DAYS}")
    return days
