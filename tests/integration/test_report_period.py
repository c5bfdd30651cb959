"""A report's default period is the days actually synced (pipeline/report/synced_days.py): from the sync ledger,
else from the stored jobs, at most 30 days, ending yesterday, or today once a sync has stored part of it. On SQLite,
PostgreSQL and MariaDB."""

from datetime import date, datetime, timedelta, timezone

from pipeline.report.figures import ReportScope
from pipeline.report.period import ReportPeriod
from pipeline.report.synced_days import synced_period
from tests.support.report_helpers import ATTEMPTED, SYNCED, known_jobs, load, write_ledger

NOW = datetime(2026, 12, 8, 0, 15, tzinfo=timezone.utc)
YESTERDAY = date(2026, 12, 7)
SCOPE = ReportScope(None, "all projects", ("p1",), date(2026, 10, 1))


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_a_week_synced_gives_a_report_of_that_week_not_of_30_days(warehouse_url):
    warehouse = load(warehouse_url, known_jobs().head(0))
    write_ledger(warehouse, {("p1", day): SYNCED for day in days(date(2026, 12, 1), YESTERDAY)})
    # Another project's older days, outside the report's coverage, do not stretch it.
    write_ledger(warehouse, {("p9", date(2026, 11, 15)): SYNCED})
    period = synced_period(warehouse, SCOPE, NOW)
    until = synced_period(warehouse, SCOPE, NOW, until=date(2026, 12, 3))
    warehouse.dispose()
    assert period == ReportPeriod(date(2026, 12, 1), YESTERDAY)
    assert until == ReportPeriod(date(2026, 12, 1), date(2026, 12, 3))


def test_a_day_synced_in_part_today_ends_the_period_today(warehouse_url):
    warehouse = load(warehouse_url, known_jobs().head(0))
    write_ledger(warehouse, {("p1", date(2026, 12, 6)): SYNCED, ("p1", YESTERDAY): SYNCED,
                             ("p1", NOW.date()): ATTEMPTED})
    period = synced_period(warehouse, SCOPE, NOW)
    warehouse.dispose()
    # The missing days between stay in it (the coverage shows them); today is the intraday sync's day in progress.
    assert period == ReportPeriod(date(2026, 12, 6), NOW.date())


def test_without_a_ledger_the_stored_jobs_say_which_days_and_at_most_30(warehouse_url):
    warehouse = load(warehouse_url, known_jobs())  # jobs created 10-29 to 12-02 (p1 and p2), no ledger rows
    recent = synced_period(warehouse, SCOPE, datetime(2026, 12, 3, 0, 15, tzinfo=timezone.utc))
    later = synced_period(warehouse, SCOPE, datetime(2026, 12, 20, 0, 15, tzinfo=timezone.utc))
    warehouse.dispose()
    assert recent == ReportPeriod(date(2026, 11, 3), date(2026, 12, 2))  # 30 days, not the 35 held
    assert later == ReportPeriod(date(2026, 11, 20), date(2026, 12, 19))


def test_with_nothing_held_the_period_starts_no_earlier_than_the_first_partition(warehouse_url):
    warehouse = load(warehouse_url, known_jobs().head(0))
    fresh = synced_period(warehouse, ReportScope(None, "all", (), date(2026, 12, 5)), NOW)
    old_start = synced_period(warehouse, SCOPE, NOW)
    warehouse.dispose()
    assert fresh == ReportPeriod(date(2026, 12, 5), YESTERDAY)
    assert old_start == ReportPeriod(YESTERDAY - timedelta(days=29), YESTERDAY)
