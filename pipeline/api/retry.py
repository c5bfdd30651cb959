"""When and how long to wait before sending a failed request again, and the loop that does it."""

import email.utils
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

import requests
from urllib3.exceptions import ReadTimeoutError

from pipeline.api.errors import DdsApiError, Problem
from pipeline.api.windows import utc_now

# The kinds of transient failure, as counted in FetchStats.retries. A broken answer is a 200 whose JSON is not the
# jobs list the API promises (jobs null or not a list, records that are not objects, more records than asked).
THROTTLED, SERVER_ERROR, CONNECTION, TIMEOUT, INVALID_JSON = "429", "5xx", "connection", "timeout", "invalid_json"
BROKEN_ANSWER = "broken_answer"
RETRY_KINDS = (THROTTLED, SERVER_ERROR, CONNECTION, TIMEOUT, INVALID_JSON, BROKEN_ANSWER)
# How long one request is retried by default (DDS_RETRY_BUDGET_SECONDS): minutes, so that an outage or a storm of
# failures is ridden out instead of failing the run.
DEFAULT_RETRY_BUDGET_SECONDS = 300.0

T = TypeVar("T")

log = logging.getLogger(__name__)


class AttemptFailure(Exception):
    """One request failed; ``kind`` is one of RETRY_KINDS when sending it again may help, else None."""

    def __init__(self, problem: Problem, kind: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(problem.summary)
        self.problem = problem
        self.kind = kind
        self.retry_after = retry_after


def retry_kind_of_status(status: int) -> str | None:
    """The retry kind of an HTTP status, or None when it must not be retried (400, 401, 403, 404, ...)."""
    if status == 429:
        return THROTTLED
    if status == 408:
        return TIMEOUT
    if 500 <= status <= 599:
        return SERVER_ERROR
    return None


def untrusted_certificate(exc: BaseException) -> str | None:
    """Why TLS verification refused the server's certificate, when that is what ``exc`` comes from, else None."""
    # requests wraps urllib3's MaxRetryError, whose .reason wraps the ssl module's error.
    cause: object = exc
    for _ in range(8):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        if not isinstance(cause, BaseException):
            return None
        inner = cause.args[0] if cause.args else None
        cause = inner if isinstance(inner, BaseException) else getattr(cause, "reason", None)
    return None


def retry_kind_of_exception(exc: BaseException) -> str | None:
    """The retry kind of an exception raised while sending a request or reading its answer."""
    if untrusted_certificate(exc) is not None:
        return None  # sending again cannot make an untrusted certificate trusted
    if isinstance(exc, requests.Timeout):
        return TIMEOUT
    # requests reports a read timeout in the middle of a body as a ConnectionError wrapping urllib3's.
    if isinstance(exc, requests.ConnectionError) and exc.args and isinstance(exc.args[0], ReadTimeoutError):
        return TIMEOUT
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError, ConnectionError)):
        return CONNECTION
    return None


def parse_retry_after(value: str | None, now: Callable[[], datetime] = utc_now) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - now()).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by ``total_budget`` seconds per request (and by
    ``max_attempts`` when set).

    The n-th retry waits up to ``min(max_delay, base_delay * 2**(n-1))`` (a random share of it with ``jitter``),
    and never less than the answer's Retry-After. A throttled answer (429) waits that full backoff at least, so a
    ``Retry-After: 0`` cannot become a hot loop. The budget counts from the first attempt, requests included; a
    retry whose wait would overrun it is not made. It is what ends a failing request: an outage or a storm of
    a few minutes is ridden out, a longer one fails the request. ``sleep``, ``clock`` and ``random`` are
    replaceable in tests.
    """

    total_budget: float = DEFAULT_RETRY_BUDGET_SECONDS
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_attempts: int | None = None
    jitter: bool = True
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
            raise ValueError(f"max_attempts must be an integer >= 1 or None, got {attempts!r}")
        for name in ("base_delay", "max_delay", "total_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.max_delay < self.base_delay:
            raise ValueError(f"max_delay ({self.max_delay}) must not be below base_delay ({self.base_delay})")

    def backoff_ceiling(self, retry_number: int) -> float:
        """The longest wait before retry ``retry_number`` (1 for the first retry)."""
        return min(self.max_delay, self.base_delay * 2 ** min(retry_number - 1, 62))

    def delay(self, retry_number: int, kind: str | None, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` of a failure of ``kind``."""
        ceiling = self.backoff_ceiling(retry_number)
        backoff = ceiling if kind == THROTTLED or not self.jitter else self.random() * ceiling
        return max(retry_after or 0.0, backoff)


def _never() -> bool:
    return False


def call_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    window: str | None = None,
    on_attempt: Callable[[], None] = lambda: None,
    on_retry: Callable[[str], None] = lambda kind: None,
    abandoned: Callable[[], bool] = _never,
) -> T:
    """Run ``attempt`` until it returns, retrying the AttemptFailures that have a kind.

    Raises DdsApiError at once for a failure without a kind, and when the policy's time budget (or attempts) run
    out, or when ``abandoned()`` says before a retry that its answer is no longer wanted. ``on_attempt`` is told
    of each attempt, ``on_retry`` of each retry with its kind.
    """
    started = policy.clock()
    number = 0
    while True:
        number += 1
        on_attempt()
        try:
            return attempt()
        except AttemptFailure as failure:
            if failure.kind is None:
                raise DdsApiError.rejected(failure.problem, window, attempts=number) from None
            if number == policy.max_attempts:
                raise DdsApiError.exhausted(failure.problem, window, attempts=number) from None
            if abandoned():
                reason = " (no longer needed: the rest of its slice failed or ended before it)"
                raise DdsApiError.exhausted(failure.problem, window, attempts=number, reason=reason) from None
            wait = policy.delay(number, failure.kind, failure.retry_after)
            if policy.clock() - started + wait > policy.total_budget:
                reason = f" (the next wait of {wait:.1f} s would pass the {policy.total_budget:g} s retry budget)"
                raise DdsApiError.exhausted(failure.problem, window, attempts=number, reason=reason) from None
            on_retry(failure.kind)
            # INFO: a retry is the policy working (a 429 is the quota's pace, not a fault); a run whose share of
            # throttled requests is high says so once, in its summary (client.throttling_warning).
            log.info("DDS API attempt %d failed (%s%s); retrying in %.2f s%s", number,
                        "" if failure.problem.status is None else f"HTTP {failure.problem.status} ",
                        failure.problem.summary, wait, f" for window {window}" if window else "")
            policy.sleep(wait)
