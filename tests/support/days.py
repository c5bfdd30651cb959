"""The days the tests of runs sync, computed when a test uses them: a day computed once, at import, went stale for
the tests of a suite that ran past midnight."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone

# The day last_day() gives while a test runs (pinned_last_day, autouse in tests/conftest.py); empty between tests.
_PINNED: list[date] = []


def yesterday() -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=1)


@contextmanager
def pinned_last_day() -> Iterator[None]:
    """last_day() gives the same day for the whole of the block: yesterday as it starts, so that a test running
    across midnight syncs and expects the same days throughout."""
    _PINNED.append(yesterday())
    try:
        yield
    finally:
        _PINNED.pop()


def last_day() -> date:
    """The last day the tests of runs sync: yesterday, as the running test started."""
    return _PINNED[-1] if _PINNED else yesterday()


def late_on_last_day() -> datetime:
    """The simulator's clock late on the last day: its evening jobs are still Running at a first sync."""
    return datetime.combine(last_day(), time(23, 40), tzinfo=timezone.utc)
