"""Time windows: validation, the API's time format, and slicing into spans the API accepts."""

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.api.windows import MAX_API_SPAN, TimeWindow, format_api_time

UTC = timezone.utc
BEIJING = timezone(timedelta(hours=8))


def test_format_api_time_is_utc_with_numeric_offset():
    assert format_api_time(datetime(2026, 11, 1, tzinfo=UTC)) == "2026-11-01T00:00:00+0000"
    assert format_api_time(datetime(2026, 11, 1, 8, 30, 15, 999_999, tzinfo=BEIJING)) == "2026-11-01T00:30:15+0000"


def test_format_api_time_refuses_naive_times():
    with pytest.raises(ValueError, match="no time zone"):
        format_api_time(datetime(2026, 11, 1))


def test_window_is_normalised_to_utc():
    window = TimeWindow(datetime(2026, 11, 1, 8, tzinfo=BEIJING), datetime(2026, 11, 2, 8, tzinfo=BEIJING))
    assert window.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert window.start.tzinfo is UTC and window.end.tzinfo is UTC
    assert str(window) == "2026-11-01T00:00:00Z..2026-11-02T00:00:00Z"


@pytest.mark.parametrize(
    "start, end, message",
    [
        (datetime(2026, 11, 1), datetime(2026, 11, 2, tzinfo=UTC), "window start .* has no time zone"),
        (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2), "window end .* has no time zone"),
        (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), "must be later than its start"),
        (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), "must be later than its start"),
    ],
)
def test_window_refuses_naive_or_empty(start, end, message):
    with pytest.raises(ValueError, match=message) as caught:
        TimeWindow(start, end)
    assert "\n" not in str(caught.value)


def test_window_refuses_dates():
    with pytest.raises(TypeError, match="window start must be a datetime"):
        TimeWindow(date(2026, 11, 1), datetime(2026, 11, 2, tzinfo=UTC))


def test_for_days_covers_whole_utc_days():
    window = TimeWindow.for_days(date(2026, 11, 1), date(2026, 11, 7))
    assert window == TimeWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))
    assert TimeWindow.for_days(date(2026, 11, 1), date(2026, 11, 1)).span == timedelta(days=1)
    with pytest.raises(ValueError, match="last day 2026-10-31 is before first day 2026-11-01"):
        TimeWindow.for_days(date(2026, 11, 1), date(2026, 10, 31))


def test_split_of_a_short_window_is_itself():
    window = TimeWindow.for_days(date(2026, 11, 1), date(2026, 11, 30))
    assert window.span == MAX_API_SPAN
    assert window.split() == [window]


def test_split_of_a_long_window_cuts_at_30_days():
    slices = TimeWindow.for_days(date(2026, 1, 1), date(2026, 3, 1)).split()
    assert [str(s) for s in slices] == [
        "2026-01-01T00:00:00Z..2026-01-31T00:00:00Z",
        "2026-01-31T00:00:00Z..2026-03-02T00:00:00Z",
    ]


def test_split_refuses_non_positive_span():
    with pytest.raises(ValueError, match="max_span must be a positive timedelta"):
        TimeWindow.for_days(date(2026, 11, 1), date(2026, 11, 2)).split(timedelta(0))


moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@given(
    start=moments,
    length=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=400)),
    max_span=st.timedeltas(min_value=timedelta(hours=6), max_value=timedelta(days=45)),
)
def test_split_slices_are_consecutive_bounded_and_cover_the_window(start, length, max_span):
    window = TimeWindow(start, start + length)
    slices = window.split(max_span)
    assert slices[0].start == window.start and slices[-1].end == window.end
    assert all(earlier.end == later.start for earlier, later in zip(slices, slices[1:]))
    assert all(s.span <= max_span for s in slices)
    assert all(s.span == max_span for s in slices[:-1])
