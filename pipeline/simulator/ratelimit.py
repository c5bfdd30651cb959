"""The gateway's throttling, simulated: a token bucket per user, whose limit may change on a schedule.

The provider's API gateway allows each user N requests a second and answers the rest ``429`` with
``{"error_code": "APIG.0308", "error_msg": "...policy user over ratelimit,limit:N,time:1 second"}`` (docs/dds-api.md).
Here each user (the ``X-Auth-Token`` sent, or the access key of a signed request) has a bucket of N tokens,
refilled at N a second across all its connections; a request that finds it empty is answered 429 with a
``Retry-After`` of the seconds until the next token (at least 1, the header counts whole seconds). The
schedule's clock starts at the first request it sees, so that a test's or benchmark's set-up does not eat into
its first step.

    SimulatorConfig(rate_limit=10)                          # 10 requests a second per user
    SimulatorConfig(rate_limit=((0, 50), (5, 5), (15, 50)))  # 50/s, from second 5 on 5/s, from second 15 on 50/s
"""

import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.simulator.protocol import RequestInfo, Response

THROTTLED_CODE = "APIG.0308"
_ACCESS_KEY = re.compile(r"Access=([^,\s]+)")
_JSON_TYPE = {"Content-Type": "application/json;charset=UTF-8"}


def throttled_body(limit: float) -> dict[str, str]:
    """The gateway's error body for a user over ``limit`` requests a second."""
    return {"error_code": THROTTLED_CODE, "error_msg": "The throttling threshold has been reached: "
            f"policy user over ratelimit,limit:{limit:g},time:1 second"}


@dataclass(frozen=True)
class RateSchedule:
    """Requests a second allowed per user: ``steps`` of (from second, limit), the first from second 0."""

    steps: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, spec: "float | Sequence[tuple[float, float]] | str") -> "RateSchedule":
        """From a limit (``10``), pairs (``((0, 50), (5, 5))``) or their text (``"0:50,5:5"``); ValueError if bad."""
        if isinstance(spec, str):
            try:
                spec = [tuple(float(part) for part in step.split(":")) for step in spec.split(",")]
            except ValueError:
                raise ValueError(f"rate limit schedule {spec!r} is not SECOND:LIMIT pairs such as 0:50,10:5,20:50") \
                    from None
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            spec = [(0.0, spec)]
        steps = tuple(tuple(step) for step in spec) if isinstance(spec, (list, tuple)) else ()
        if not steps or any(len(step) != 2 for step in steps):
            raise ValueError(f"rate_limit must be requests a second or (from second, limit) pairs, got {spec!r}")
        for start, limit in steps:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in (start, limit)) or limit <= 0 or start < 0:
                raise ValueError(f"rate limit step ({start!r}, {limit!r}): limits must be > 0, seconds >= 0")
        starts = [start for start, _ in steps]
        if starts[0] != 0 or starts != sorted(set(starts)):
            raise ValueError(f"rate limit steps must start at second 0, in increasing order, got {starts}")
        return cls(tuple((float(start), float(limit)) for start, limit in steps))

    def limit_at(self, seconds: float) -> float:
        """The limit ``seconds`` after the schedule started."""
        return next(limit for start, limit in reversed(self.steps) if seconds >= start)

    def __str__(self) -> str:
        if len(self.steps) == 1:
            return f"{self.steps[0][1]:g} requests/s per user"
        return ", then ".join(f"{limit:g}/s from {start:g} s" for start, limit in self.steps) + " (per user)"


def user_of(request: RequestInfo) -> str:
    """Whom the gateway counts a request against: its token, or the access key of its signature."""
    token = request.header("X-Auth-Token")
    if token:
        return "token " + token
    access = _ACCESS_KEY.search(request.header("Authorization") or "")
    return "key " + access.group(1) if access else "anonymous"


class UserRateLimit:
    """One token bucket per user, holding one second of the current limit; thread-safe."""

    def __init__(self, schedule: RateSchedule, clock: Callable[[], float] = time.monotonic) -> None:
        self.schedule = schedule
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._buckets: dict[str, tuple[float, float]] = {}  # user: (tokens, when counted)

    def check(self, request: RequestInfo) -> Response | None:
        """None when the request may pass (a token is taken), else the 429 answer."""
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = now
            limit = self.schedule.limit_at(now - self._started)
            user = user_of(request)
            tokens, counted = self._buckets.get(user, (limit, now))
            tokens = min(limit, tokens + (now - counted) * limit)
            if tokens >= 1:
                self._buckets[user] = (tokens - 1, now)
                return None
            self._buckets[user] = (tokens, now)
        retry_after = max(1, math.ceil((1 - tokens) / limit))
        return Response(429, {**_JSON_TYPE, "Retry-After": str(retry_after)},
                        json.dumps(throttled_body(limit)).encode())
