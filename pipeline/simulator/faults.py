"""Failures the simulator injects into job requests, queued (the next N requests) or drawn at random."""

import json
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

FAULT_KINDS: tuple[str, ...] = (
    "429", "429_no_retry_after", "500", "502_html", "503", "drop", "truncate", "slow", "invalid_json",
)
# The gateway's throttling message carries the policy's limit; the provider's figure is not public.
THROTTLE_LIMIT = 20
_THROTTLED = {"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached: "
              f"policy user over ratelimit,limit:{THROTTLE_LIMIT},time:1 second"}
# No documented code for an internal DDS error: this one is the simulator's own.
_INTERNAL = {"error_code": "DBS.200999", "error_msg": "Internal server error. Try again later."}
# A gateway whose backend is down; the code is the simulator's choice (docs/dds-api.md: none is documented).
_UNAVAILABLE = {"error_code": "APIG.0202", "error_msg": "Backend unavailable"}
_BAD_GATEWAY_PAGE = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                     b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                     b"</body>\r\n</html>\r\n")
_NOT_JSON = b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
_JSON_TYPE = {"Content-Type": "application/json;charset=UTF-8"}


@dataclass(frozen=True)
class Fault:
    """One injected failure: `kind` from FAULT_KINDS; `retry_after` (seconds) for "429", `delay` (seconds)
    for "slow"."""
    kind: str
    retry_after: int = 1
    delay: float = 5.0

    @property
    def drops_connection(self) -> bool:
        return self.kind == "drop"

    @property
    def delay_s(self) -> float:
        """How long to wait before the normal answer."""
        return self.delay if self.kind == "slow" else 0.0

    def replacement(self) -> tuple[int, dict[str, str], bytes] | None:
        """(status, headers, body) answered instead of the normal response, or None to answer normally."""
        if self.kind == "429":
            return 429, {**_JSON_TYPE, "Retry-After": str(self.retry_after)}, json.dumps(_THROTTLED).encode()
        if self.kind == "429_no_retry_after":
            return 429, dict(_JSON_TYPE), json.dumps(_THROTTLED).encode()
        if self.kind == "500":
            return 500, dict(_JSON_TYPE), json.dumps(_INTERNAL).encode()
        if self.kind == "503":
            return 503, dict(_JSON_TYPE), json.dumps(_UNAVAILABLE).encode()
        if self.kind == "502_html":
            return 502, {"Content-Type": "text/html"}, _BAD_GATEWAY_PAGE
        return None

    def corrupt(self, status: int, body: bytes) -> tuple[int, bytes]:
        """The normal answer as this fault spoils it: cut mid-JSON, or replaced by a non-JSON 200 body."""
        if self.kind == "truncate":
            return 200, body[:max(1, len(body) // 2)]
        if self.kind == "invalid_json":
            return 200, _NOT_JSON
        return status, body


def _check_params(retry_after: int, delay: float) -> None:
    if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
        raise ValueError(f"retry_after must be an integer number of seconds >= 0, got {retry_after!r}")
    if not isinstance(delay, (int, float)) or delay < 0:
        raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")


def _check_kind(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")


class FaultInjector:
    """Decides the fault of each job request: queued faults first (FIFO), then the random draw, if any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._weights: list[tuple[float, Fault]] = []
        self._rng = random.Random()

    def inject(self, kind: str, times: int = 1, retry_after: int = 1, delay: float = 5.0) -> None:
        """The next `times` job requests (after those already queued) get this fault."""
        _check_kind(kind)
        _check_params(retry_after, delay)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an integer >= 1, got {times!r}")
        with self._lock:
            self._queue.extend([Fault(kind, retry_after, delay)] * times)

    def random(self, probabilities: Mapping[str, float], seed: int | None = None, retry_after: int = 1,
               delay: float = 5.0) -> None:
        """From now on each job request without a queued fault gets kind K with probability
        probabilities[K] (their sum at most 1); replaces any earlier random setting."""
        for kind, probability in probabilities.items():
            _check_kind(kind)
            if not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
                raise ValueError(f"probability of fault {kind!r} must be within 0..1, got {probability!r}")
        if sum(probabilities.values()) > 1:
            raise ValueError(f"fault probabilities add up to {sum(probabilities.values())}, more than 1")
        _check_params(retry_after, delay)
        with self._lock:
            self._rng = random.Random(seed)
            self._weights = [(p, Fault(kind, retry_after, delay)) for kind, p in probabilities.items() if p > 0]

    def clear(self) -> None:
        """No more faults: drops the queue and the random setting."""
        with self._lock:
            self._queue.clear()
            self._weights = []

    @property
    def pending(self) -> int:
        """Queued faults not served yet."""
        return len(self._queue)

    def next_fault(self) -> Fault | None:
        """The fault for the job request being answered, or None."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if not self._weights:
                return None
            draw = self._rng.random()
            for probability, fault in self._weights:
                if draw < probability:
                    return fault
                draw -= probability
            return None
