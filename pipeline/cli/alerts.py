"""``dds-tasks alerts test``: one test message to each destination of DDS_ALERT_URLS, a line per destination
(masked): delivered, or why not. ``dds-tasks alerts list [--days N]``: the alerts of dds_alerts first seen in the
last N days, and every one still pending, as a table."""

import argparse
from datetime import datetime, timedelta, timezone

from pipeline.alerts.delivery import Destination, deliver
from pipeline.alerts.ledger import alert_rows, ensure_alerts_table
from pipeline.alerts.messages import probe_message
from pipeline.config import ALERT_URLS_VARIABLE, ConfigError, Deployment

DESCRIPTION = "Try the alert destinations, or list the alerts sent and pending (docs/alerts.md)."
DEFAULT_LIST_DAYS = 7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands of ``dds-tasks alerts`` on its (sub)parser."""
    commands = parser.add_subparsers(dest="alerts_command", required=True)
    probe = commands.add_parser("test", help="send one test message to each destination of DDS_ALERT_URLS")
    probe.set_defaults(run=run_test)
    listing = commands.add_parser("list", help="the alerts sent and pending (table dds_alerts)")
    listing.add_argument("--days", type=_whole_days, default=DEFAULT_LIST_DAYS,
                         help=f"alerts first seen within this many days, and all pending (default {DEFAULT_LIST_DAYS})")
    listing.set_defaults(run=run_list)


def run_test(args: argparse.Namespace) -> int:
    """Exit status 0 when every destination took the message, 1 otherwise."""
    targets = [Destination(url) for url in Deployment.from_env().alert_urls]
    if not targets:
        raise ConfigError(f"{ALERT_URLS_VARIABLE} is not set: no destination to test (alerts are off)")
    now = datetime.now(timezone.utc)
    failed = 0
    for destination in targets:
        delivery = deliver(destination, *probe_message(destination.name, now))
        failed += not delivery.delivered
        print(f"{destination.name}: " + ("delivered" if delivery.delivered else f"not delivered: {delivery.reason}"))
    return 1 if failed else 0


def run_list(args: argparse.Namespace) -> int:
    import pandas as pd

    from pipeline.warehouse.store import Warehouse

    settings = Deployment.from_env()
    warehouse = Warehouse(settings.warehouse_url)
    try:
        ensure_alerts_table(warehouse)
        with warehouse.connect() as connection:
            rows = alert_rows(connection, since=datetime.now(timezone.utc) - timedelta(days=args.days))
    finally:
        warehouse.dispose()
    if not rows:
        print(f"no alert in the last {args.days} day(s), none pending")
        return 0
    table = pd.DataFrame([{
        "state": row.state, "kind": row.kind, "key": row.alert_key, "destination": row.destination,
        "first seen": f"{row.first_seen_at:%Y-%m-%d %H:%M}", "sent": _time(row.sent_at), "attempts": row.attempts,
        "last error": row.last_error or "",
    } for row in rows])
    print(table.to_string(index=False))
    pending = sum(row.state == "pending" for row in rows)
    print(f"{len(rows)} alert(s): {sum(row.state == 'sent' for row in rows)} sent, {pending} pending, "
          f"{sum(row.state == 'given up' for row in rows)} given up")
    return 0


def _time(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else ""


def _whole_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"{days} must be at least 1")
    return days
