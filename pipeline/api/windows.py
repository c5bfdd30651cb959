"""Time windows of job creation, and the time format the DDS API expects."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

# The API refuses a span end_time - start_time longer than 30 days.
MAX_API_SPAN = timedelta(days=30)
# The provider answers for "within one month"; 30 days is what it reliably holds.
API_RETENTION = timedelta(days=30)
# Stay clear of the retention edge: a window starting exactly at it may be refused or half-answered.
RETENTION_MARGIN = timedelta(minutes=10)
# How much of a UTC day's jobs the API still holds (held_by_api): all, part (retention cuts the day), or none.
FULL, PARTIAL, GONE = "full", "partial", "gone"


def utc_now() -> datetime:
    """Now, in UTC (a parameter's default, so that tests can move the clock)."""
    return datetime.now(timezone.utc)


def format_api_time(moment: datetime) -> str:
    """``moment`` in UTC as the API's query wants it: ``2026-11-01T00:00:00+0000`` (sub-seconds dropped)."""
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone; give an aware (UTC) datetime")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TimeWindow:
    """The jobs created in the half-open UTC interval [start, end).

    The API itself treats ``end_time`` as inclusive, so a fetch of a window may also return jobs created
    exactly at ``end``; callers that partition by day drop or re-home those.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for label, moment in (("start", self.start), ("end", self.end)):
            if not isinstance(moment, datetime):
                raise TypeError(f"window {label} must be a datetime, got {type(moment).__name__}")
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"window {label} {moment.isoformat()} has no time zone; use UTC datetimes")
        object.__setattr__(self, "start", self.start.astimezone(timezone.utc))
        object.__setattr__(self, "end", self.end.astimezone(timezone.utc))
        if self.end <= self.start:
            raise ValueError(f"window end {_utc_text(self.end)} must be later than its start {_utc_text(self.start)}")

    @classmethod
    def for_days(cls, first: date, last: date) -> "TimeWindow":
        """The UTC days ``first`` to ``last`` inclusive: from midnight of ``first`` to midnight after ``last``."""
        for label, day in (("first", first), ("last", last)):
            if isinstance(day, datetime) or not isinstance(day, date):
                raise TypeError(f"{label} day must be a date, got {type(day).__name__}")
        if last < first:
            raise ValueError(f"last day {last.isoformat()} is before first day {first.isoformat()}")
        start = datetime.combine(first, time.min, tzinfo=timezone.utc)
        return cls(start, datetime.combine(last + timedelta(days=1), time.min, tzinfo=timezone.utc))

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def split(self, max_span: timedelta = MAX_API_SPAN) -> list["TimeWindow"]:
        """Consecutive slices of at most ``max_span`` covering this window, without gap or overlap."""
        if not isinstance(max_span, timedelta) or max_span <= timedelta(0):
            raise ValueError(f"max_span must be a positive timedelta, got {max_span!r}")
        slices = []
        start = self.start
        while start < self.end:
            end = min(start + max_span, self.end)
            slices.append(TimeWindow(start, end))
            start = end
        return slices

    def __str__(self) -> str:
        return f"{_utc_text(self.start)}..{_utc_text(self.end)}"


def days_between(first: date, last: date) -> list[date]:
    """The UTC days ``first`` to ``last``, both included (none when ``last`` is before ``first``)."""
    return [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]


def day_window(day: date) -> TimeWindow:
    """The half-open UTC window [day 00:00, next day 00:00) of a partition."""
    return TimeWindow.for_days(day, day)


def retained_since(now: datetime) -> datetime:
    """The earliest ``created_at`` the API can still be asked about at ``now``."""
    return now - API_RETENTION + RETENTION_MARGIN


def held_by_api(day: date, now: datetime) -> str:
    """How much of a day's jobs the API still holds at ``now``: FULL, PARTIAL (retention cuts the day) or GONE."""
    window = day_window(day)
    since = retained_since(now)
    if window.end <= since:
        return GONE
    return FULL if window.start >= since else PARTIAL
