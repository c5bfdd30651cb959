"""A report's period (consecutive UTC days of the jobs' ``created_at``) and scope: stdlib only, so the CLI checks its
options, and the definitions load, without pandas or matplotlib."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

DEFAULT_DAYS = 30
# A year and a day: a daily chart of more would be unreadable, and every result stays a few thousand rows.
MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class ReportPeriod:
    """UTC days of ``created_at``, ``first_day`` to ``last_day`` inclusive."""

    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        if self.first_day > self.last_day:
            raise ValueError(f"the period starts ({self.first_day}) after it ends ({self.last_day})")
        if self.days > MAX_PERIOD_DAYS:
            raise ValueError(f"the period holds {self.days} days; a report covers at most {MAX_PERIOD_DAYS}")

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def half_day(self) -> date:
        """The first day of the period's second half (the first half is the shorter one when the days are odd)."""
        return self.first_day + timedelta(days=self.days // 2)

    def __str__(self) -> str:
        return f"{self.first_day.isoformat()} to {self.last_day.isoformat()} ({self.days} UTC days)"


def period_ending(last_day: date, days: int = DEFAULT_DAYS) -> ReportPeriod:
    """The ``days`` UTC days up to ``last_day``."""
    return ReportPeriod(last_day - timedelta(days=days - 1), last_day)


def default_period(now: datetime, days: int = DEFAULT_DAYS) -> ReportPeriod:
    """The ``days`` UTC days up to yesterday: the days the daily sync has had the chance to complete."""
    return period_ending(now.date() - timedelta(days=1), days)


@dataclass(frozen=True)
class ReportScope:
    """Whose jobs a report covers: one project's (``project_id``) or every project's (None), named ``label``;
    ``coverage_projects`` are the projects whose sync coverage it shows (empty: every project of the ledger),
    ``start_date`` the pipeline's first day (DDS_START_DATE)."""

    project_id: str | None
    label: str
    coverage_projects: tuple[str, ...]
    start_date: date
