"""A report's default period: the days actually synced, so that a fresh install's report has no weeks of blank days.

The period ends yesterday (or ``until``), or today when an intraday sync has stored part of it; it starts on the
first day within DEFAULT_DAYS of its end that the sync ledger holds, or that stored jobs were created on. With
nothing held in those days it starts DEFAULT_DAYS before its end, but never before DDS_START_DATE: nothing
synced in a month is itself the news.
"""

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.report.coverage import as_date
from pipeline.report.period import DEFAULT_DAYS, ReportPeriod, ReportScope
from pipeline.sqlfiles import read_sql

if TYPE_CHECKING:
    from pipeline.warehouse.store import Warehouse


def synced_period(warehouse: "Warehouse", scope: ReportScope, now: datetime, until: date | None = None) -> ReportPeriod:
    """The days of ``scope`` the warehouse holds, up to ``until`` (default: up to yesterday, or today when held)."""
    today = now.date()
    latest = until or today
    held = warehouse.query(
        read_sql("report/days_held.sql"), earliest=latest - timedelta(days=DEFAULT_DAYS), latest=latest,
        # An empty IN list is typed INTEGER by SQLAlchemy, which PostgreSQL refuses to compare with text.
        any_project=0 if scope.coverage_projects else 1, projects=list(scope.coverage_projects) or [""],
        all_projects=1 if scope.project_id is None else 0, project_id=scope.project_id or "")
    firsts = [as_date(day) for day in held["first_day"] if day is not None and day == day]
    lasts = [as_date(day) for day in held["last_day"] if day is not None and day == day]
    last_day = until or (today if today in lasts else today - timedelta(days=1))
    window_first = last_day - timedelta(days=DEFAULT_DAYS - 1)
    first_day = max(min(firsts), window_first) if firsts else max(window_first, scope.start_date)
    return ReportPeriod(min(first_day, last_day), last_day)
