"""Retry classification, backoff and the retry loop, with the sleep and the clock replaced."""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from urllib3.exceptions import ReadTimeoutError

from pipeline.api.errors import DdsApiError, Problem, parse_error_body
from pipeline.api.retry import (
    AttemptFailure,
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
    retry_kind_of_exception,
    retry_kind_of_status,
)


@pytest.mark.parametrize(
    "status, kind",
    [(429, "429"), (500, "5xx"), (502, "5xx"), (503, "5xx"), (504, "5xx"), (408, "timeout"),
     (400, None), (401, None), (403, None), (404, None), (409, None), (302, None)],
)
def test_status_classification(status, kind):
    assert retry_kind_of_status(status) == kind


@pytest.mark.parametrize(
    "exc, kind",
    [
        (requests.ReadTimeout("read timed out"), "timeout"),
        (requests.ConnectTimeout("connect timed out"), "timeout"),
        (requests.ConnectionError(ReadTimeoutError(None, "/jobs", "read timed out")), "timeout"),
        (requests.ConnectionError("connection reset by peer"), "connection"),
        (requests.exceptions.ChunkedEncodingError("IncompleteRead(10 bytes read, 90 more expected)"), "connection"),
        (requests.exceptions.InvalidURL("bad url"), None),
    ],
)
def test_exception_classification(exc, kind):
    assert retry_kind_of_exception(exc) == kind


def test_retry_after_forms():
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=lambda: now) == 7.0


def test_backoff_grows_exponentially_up_to_max_delay():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=False)
    assert [policy.delay(n, "5xx") for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff_ceiling(10_000) == 3.0


def test_full_jitter_draws_below_the_ceiling():
    assert RetryPolicy(base_delay=1.0, random=lambda: 0.25).delay(3, "timeout") == 1.0
    assert RetryPolicy(base_delay=1.0, random=lambda: 0.0).delay(3, "connection") == 0.0


def test_retry_after_is_a_floor_for_every_kind():
    policy = RetryPolicy(base_delay=0.5, random=lambda: 0.5)
    assert policy.delay(1, "5xx", retry_after=7.0) == 7.0
    assert policy.delay(1, "5xx", retry_after=None) == 0.25
    assert policy.delay(4, "5xx", retry_after=1.0) == 2.0


def test_throttling_honours_retry_after_but_never_loops_hot():
    policy = RetryPolicy(base_delay=0.5, random=lambda: 0.0)
    assert policy.delay(1, "429", retry_after=4.0) == 4.0
    assert policy.delay(1, "429", retry_after=0.0) == 0.5
    assert policy.delay(3, "429", retry_after=None) == 2.0


@given(
    retry_number=st.integers(1, 100),
    kind=st.sampled_from(["429", "5xx", "connection", "timeout", "invalid_json"]),
    retry_after=st.one_of(st.none(), st.floats(0, 600)),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_delay_is_bounded(retry_number, kind, retry_after, draw):
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, random=lambda: draw)
    delay = policy.delay(retry_number, kind, retry_after)
    assert 0 <= delay <= max(30.0, retry_after or 0)
    if kind == "429":
        assert delay >= 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"base_delay": -1}, "base_delay must be a number >= 0"),
        ({"total_budget": float("nan")}, "total_budget must be a number >= 0"),
        ({"base_delay": 5.0, "max_delay": 1.0}, "max_delay .* must not be below base_delay"),
    ],
)
def test_policy_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


class Flaky:
    """Fails with the given failures in turn, then answers ``"ok"``; counts its calls."""

    def __init__(self, *failures: AttemptFailure) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def transient(kind: str, status: int | None = 502, retry_after: float | None = None) -> AttemptFailure:
    return AttemptFailure(Problem("Bad Gateway", status, request_id="req-9"), kind, retry_after)


def test_transient_failures_are_retried_with_recorded_waits():
    sleeps: list[float] = []
    retried: list[str] = []
    policy = RetryPolicy(base_delay=0.1, jitter=False, sleep=sleeps.append)
    attempt = Flaky(transient("5xx"), transient("429", 429, retry_after=2.0), transient("timeout", None))
    assert call_with_retries(attempt, policy, on_retry=retried.append) == "ok"
    assert attempt.calls == 4
    assert retried == ["5xx", "429", "timeout"]
    assert sleeps == [0.1, 2.0, 0.4]


def test_refusal_is_raised_at_once():
    sleeps: list[float] = []
    refusal = AttemptFailure(Problem("DBS.200001 bad time", 400, "DBS.200001", "bad time", "req-1"))
    attempt = Flaky(refusal)
    with pytest.raises(DdsApiError) as caught:
        call_with_retries(attempt, RetryPolicy(sleep=sleeps.append), window="W")
    assert attempt.calls == 1 and sleeps == []
    error = caught.value
    assert (error.status, error.error_code, error.request_id, error.window, error.attempts) == (
        400, "DBS.200001", "req-1", "W", 1)
    assert str(error).startswith(
        "DDS rejected the request: DBS.200001 bad time (HTTP 400, request id req-1) for window W: check the query"
    )


def test_exhausted_attempts_raise_with_the_last_failure():
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, sleep=lambda s: None)
    attempt = Flaky(*[transient("5xx")] * 5)
    with pytest.raises(DdsApiError) as caught:
        call_with_retries(attempt, policy, window="W")
    assert attempt.calls == 3 and caught.value.attempts == 3
    assert str(caught.value) == (
        "DDS API kept failing after 3 attempts (last: HTTP 502 Bad Gateway, request id req-9) for window W"
    )


def test_time_budget_stops_retrying_before_overrunning():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    policy = RetryPolicy(max_attempts=50, base_delay=1.0, max_delay=4.0, total_budget=10.0, jitter=False,
                         sleep=sleep, clock=lambda: now[0])
    budget_message = r"after 4 attempts \(the next wait of 4.0 s would pass the 10 s retry budget\)"
    with pytest.raises(DdsApiError, match=budget_message):
        call_with_retries(Flaky(*[transient("5xx")] * 50), policy)
    assert sleeps == [1.0, 2.0, 4.0]


def fake_time() -> tuple[list[float], Callable[[float], None], Callable[[], float]]:
    """A clock that only the recorded sleeps move: (the sleeps, sleep, clock)."""
    now, sleeps = [0.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    return sleeps, sleep, lambda: now[0]


def test_without_an_attempt_limit_the_time_budget_alone_ends_the_retries():
    sleeps, sleep, clock = fake_time()
    policy = RetryPolicy(total_budget=300.0, base_delay=0.5, max_delay=30.0, jitter=False, sleep=sleep, clock=clock)
    attempt = Flaky(*[transient("5xx")] * 100)
    with pytest.raises(DdsApiError, match=r"after 15 attempts \(the next wait of 30.0 s would pass the 300 s"):
        call_with_retries(attempt, policy, window="W")
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0] + [30.0] * 8 and sum(sleeps) == 271.5


def test_an_outage_shorter_than_the_budget_is_ridden_out():
    sleeps, sleep, clock = fake_time()
    policy = RetryPolicy(total_budget=300.0, sleep=sleep, clock=clock, random=lambda: 1.0)
    # Down for a minute and a half: ten answers of 503, then the page.
    assert call_with_retries(Flaky(*[transient("5xx", 503)] * 10), policy) == "ok"
    assert 60 < sum(sleeps) < 300


def test_an_abandoned_request_stops_retrying():
    sleeps: list[float] = []
    wanted = [True, True, False]
    policy = RetryPolicy(base_delay=0.01, sleep=sleeps.append)
    with pytest.raises(DdsApiError, match=r"after 3 attempts \(no longer needed"):
        call_with_retries(Flaky(*[transient("5xx")] * 10), policy, abandoned=lambda: not wanted.pop(0))
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "body, code, msg",
    [
        (b'{"error_code": "DBS.200001", "error_msg": "Invalid parameter."}', "DBS.200001", "Invalid parameter."),
        (b'{"errorCode": "DBS.200010", "errorMsg": "mismatch"}', "DBS.200010", "mismatch"),
        (b'{"code": "APIG.0308", "message": "over ratelimit"}', "APIG.0308", "over ratelimit"),
        (b'{"error": {"code": "APIG.0307", "message": "The token expires."}}', "APIG.0307", "The token expires."),
        (b'{"error": {"error_code": "DBS.200001", "error_msg": "Invalid"}}', "DBS.200001", "Invalid"),
        (b'{"error": {"code": 401, "title": "Unauthorized", "message": "wrong password"}}', "401", "wrong password"),
        (b'{"error": "plain words"}', None, None),
        (b'{"something": "else"}', None, None),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", None, None),
        (b"", None, None),
    ],
)
def test_error_bodies_of_every_shape(body, code, msg):
    parsed_code, parsed_msg, excerpt = parse_error_body(body)
    assert (parsed_code, parsed_msg) == (code, msg)
    assert excerpt and "\n" not in excerpt and len(excerpt) <= 200
