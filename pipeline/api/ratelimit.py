"""How fast to call one region's DDS API: a request rate and a number of requests in flight, both learned.

The provider's gateway throttles each user to N requests a second (``429 APIG.0308 ... policy user over
ratelimit,limit:N,time:1 second``), a quota the tenant's other tools share. Sending into a full quota wastes it
for everyone, so the client keeps, per region, an :class:`AdaptiveRate`:

- **Requests in flight** (the *window*) start at INITIAL_WINDOW and grow by half a request per answer (x1.5 per
  round trip) up to ``DDS_MAX_CONCURRENCY``; after an overload, by one per round trip. A 5xx, a reset connection
  or a timeout halves the window and lowers a known pace (FAILURE_DECREASE, not below FAILURE_FLOOR of the
  throttled pace): an overloaded service gets fewer requests until it answers again.
- **A pace** (requests a second) exists once the API has throttled, or from the start when ``DDS_MAX_RATE`` is
  set. A 429 sets it under the limit the gateway names (FOLLOW_LIMIT of it; without a readable limit,
  THROTTLE_DECREASE of the pace that was throttled). Then, while the pace is what holds requests back, it
  climbs back to the throttled level in RECOVER_SECONDS (fast at first, slowly near it) and past it ever faster
  (cubic in time), so a quota that has grown is found within seconds and an unchanged one is tested about
  every ten seconds, at the cost of one 429. It never passes ``DDS_MAX_RATE``.

Only one decrease per round trip: an answer to a request sent before the last decrease says nothing new. A 429 now
and then leaves the learned level alone; only sustained throttling lowers it, to what got through. Requests wait
their turn first come, first served, and the wait is no part of their retry budget (:func:`excluding_waits`).
One :class:`RegionLimiter` per region (and endpoint) serves every client, target and slice of the process
(:func:`region_limiter`), so targets of one region learn the quota once and share it.
"""

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.api.retry import CONNECTION, SERVER_ERROR, THROTTLED, TIMEOUT

# Requests in flight before anything is known, and what each answer adds to them until the first failure (x1.5 per
# round trip): an API without a quota is at full concurrency within a few round trips, while a throttling one has
# met few requests when its first 429 comes (doubling met half again as many, for a few ms less in a sync).
INITIAL_WINDOW = 2
SLOW_START_STEP = 0.5
# After a 429 naming its limit, the pace is this share of the limit: the gap is the room to probe above it.
FOLLOW_LIMIT = 0.9
# After a 429 that names no limit, and after failures, the pace is this share of the pace that met them.
THROTTLE_DECREASE = 0.85
FAILURE_DECREASE = 0.7
# Failures alone never take a known pace below this share of the throttled one: the window, down to one request in
# flight, is the brake for an overloaded service, and the pace must not have to climb back from nothing.
FAILURE_FLOOR = 0.5
# Seconds of paced sending to climb back to the throttled pace; past it, the excess grows as PROBE_GROWTH * t^3
# (t: seconds past RECOVER_SECONDS): +2% at 2 s, +31% at 5 s, +250% at 10 s. Under an unchanged quota one probe
# in about ten seconds meets a 429; a quota that grew eightfold is reached in about 18 s.
RECOVER_SECONDS = 4.0
PROBE_GROWTH = 0.0025
# Sustained throttling, not a probe nor a 429 now and then: over the last SUSTAINED_SECONDS, at least
# SUSTAINED_COUNT 429s and more than SUSTAINED_SHARE of the answers.
SUSTAINED_SECONDS, SUSTAINED_COUNT, SUSTAINED_SHARE = 5.0, 4, 0.25
# The gateway counts its quota per second: a 429 within a second of a decrease may still be the bucket that the pace
# before it emptied, so the pace is lowered at most once a second.
DECREASE_INTERVAL = 1.0
# The slowest pace ever set: a quota below this is not one a sync can live with anyway.
MIN_RATE = 0.5
# Answers that tell of an overloaded service (lower the window); a 429 is the quota, anything else says nothing.
_OVERLOAD_KINDS = frozenset({SERVER_ERROR, CONNECTION, TIMEOUT})
_LIMIT = re.compile(r"limit\s*:\s*(\d+(?:\.\d+)?)\s*,\s*time\s*:\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day)",
                    re.IGNORECASE)
_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def throttle_limit(message: str | None) -> float | None:
    """Requests a second that a throttled answer's message names (``limit:20,time:1 second`` gives 20.0), or None."""
    match = _LIMIT.search(message or "")
    if match is None:
        return None
    count, span = float(match.group(1)), float(match.group(2)) * _UNIT_SECONDS[match.group(3).lower()]
    return count / span if count > 0 and span > 0 else None


@dataclass(frozen=True)
class Permit:
    """Leave to send one request: its number in the order of sending (``number``) and whether the pace, not the
    window, held it back (``paced``)."""

    number: int
    paced: bool


class AdaptiveRate:
    """The learned window and pace of one region, without locks or clock of its own (times are passed in).

    ``rate`` is None while no pace is needed (no 429 yet, no ``max_rate``). With ``adaptive`` False it stays at
    ``max_rate`` and the window at ``max_concurrency``: the fixed behaviour, for comparison.
    """

    def __init__(self, max_rate: float | None, max_concurrency: int, now: float, adaptive: bool = True) -> None:
        self.adaptive = adaptive
        self.max_rate: float | None = None
        self.max_concurrency = 1
        self.rate: float | None = None
        self.window = float(INITIAL_WINDOW if adaptive else max_concurrency)
        self.in_flight = 0
        self.throttled = 0
        self._next_slot = now
        # Permits are numbered as sent; answers to those sent before the last decrease bring no news.
        self._sent = 0
        self._decreased_after = 0
        self._decreased_at = now - DECREASE_INTERVAL
        self._slow_start = True
        # The pace that was throttled, the pace the climb starts from, and the paced seconds since.
        self._peak: float | None = None
        self._start = 0.0
        self._climb_seconds = 0.0
        self._last_growth_at: float | None = None
        # When the answers of the last SUSTAINED_SECONDS came: ok, and 429.
        self._answered: deque[float] = deque()
        self._refused: deque[float] = deque()
        self.configure(max_rate, max_concurrency)

    def configure(self, max_rate: float | None, max_concurrency: int) -> None:
        """New ceilings (the latest client's settings): the pace and window are clipped to them."""
        self.max_rate, self.max_concurrency = max_rate, max_concurrency
        if not self.adaptive:
            self.rate, self.window = max_rate, float(max_concurrency)
            return
        self.window = min(self.window, float(max_concurrency))
        if self._peak is None:
            # Nothing learned yet: the ceiling, or none, is the pace.
            self.rate = max_rate
        elif max_rate is not None:
            self._set_rate(self.rate if self.rate is not None else max_rate)

    def wait_time(self, now: float) -> float | None:
        """Seconds until a request may be sent (0: now), or None while the window is full (until an answer)."""
        if self.in_flight >= max(1, int(self.window)):
            return None
        return 0.0 if self.rate is None else max(0.0, self._next_slot - now)

    def take(self, now: float, paced: bool) -> Permit:
        """Leave to send one request now (call when ``wait_time`` is 0); ``paced``: the pace made it wait."""
        self.in_flight += 1
        if self.rate is not None:
            # Never ahead of time: a pace that was not used (idle, a short slice) gives no credit for a burst.
            self._next_slot = max(now, self._next_slot) + 1.0 / self.rate
        self._sent += 1
        return Permit(self._sent, paced)

    def answered(self, permit: Permit, now: float) -> None:
        """A request that got its answer: the window grows and, when the pace held requests back, so does it."""
        self.in_flight -= 1
        self._answered.append(now)
        self._forget_before(now - SUSTAINED_SECONDS)
        if not self.adaptive:
            return
        if self.window < self.max_concurrency:
            step = SLOW_START_STEP if self._slow_start else 1.0 / self.window
            self.window = min(float(self.max_concurrency), self.window + step)
        if permit.paced and self._peak is not None:
            # Only paced seconds count: a pace nobody needed was never tested, so it must not grow meanwhile.
            previous = self._last_growth_at if self._last_growth_at is not None else now
            self._climb_seconds += min(now - previous, max(1.0, 2.0 / self._peak))
            self._last_growth_at = now
            self._set_rate(self._climb(self._climb_seconds))

    def throttled_by(self, permit: Permit, message: str | None, now: float) -> None:
        """A 429: the pace goes under the limit the gateway names (or under the pace that met it), and under what
        got through when throttling is sustained."""
        self.in_flight -= 1
        self.throttled += 1
        self._refused.append(now)
        self._forget_before(now - SUSTAINED_SECONDS)
        if not self._news(permit) or now - self._decreased_at < DECREASE_INTERVAL:
            return
        # The window keeps growing: the pace, not the number in flight, is what the quota limits.
        limit = throttle_limit(message)
        if self.rate is None:
            # The first 429: what was sent while the window grew says little; the gateway's figure says it all.
            peak = limit if limit is not None else max(float(self._count_since(self._answered, now - 1.0)), MIN_RATE)
            start = peak
        else:
            # The pace that met the 429, or the level learned before if higher: under the named limit. A 429 now and
            # then (a probe, a glitch) leaves the level where it was.
            peak = self.rate if limit is None else min(limit, max(self._peak or limit, self.rate))
            refused, answered = len(self._refused), len(self._answered)
            if refused >= SUSTAINED_COUNT and refused > SUSTAINED_SHARE * (refused + answered):
                # The tenant's other tools use the rest of the quota: what got through is what is left of it.
                peak = min(peak, max(answered / SUSTAINED_SECONDS, MIN_RATE))
            start = min(self.rate, peak)
        self._decrease(peak, now, start * (FOLLOW_LIMIT if limit is not None else THROTTLE_DECREASE))

    def failed(self, permit: Permit, kind: str | None, now: float) -> None:
        """Any other failed attempt; those that tell of overload halve the window and lower a known pace."""
        self.in_flight -= 1
        if kind not in _OVERLOAD_KINDS or not self._news(permit):
            return
        self._slow_start = False
        self.window = max(1.0, self.window / 2)
        if self.rate is not None and now - self._decreased_at >= DECREASE_INTERVAL:
            # The throttled pace stays the target: once the service answers again the pace climbs back to it.
            peak = self._peak or self.rate
            self._decrease(peak, now, min(self.rate, max(self.rate * FAILURE_DECREASE, peak * FAILURE_FLOOR)))
        else:
            self._decreased_after = self._sent

    def _news(self, permit: Permit) -> bool:
        return self.adaptive and permit.number > self._decreased_after

    def _forget_before(self, moment: float) -> None:
        for times in (self._answered, self._refused):
            while times and times[0] < moment:
                times.popleft()

    @staticmethod
    def _count_since(times: deque[float], moment: float) -> int:
        count = 0
        for when in reversed(times):
            if when < moment:
                break
            count += 1
        return count

    def _decrease(self, peak: float, now: float, start: float) -> None:
        """The pace drops to ``start`` and climbs back towards ``peak`` (see _climb)."""
        self._start = max(MIN_RATE, start)
        self._peak = max(peak, self._start)
        self._climb_seconds = 0.0
        self._last_growth_at = None
        self._decreased_after = self._sent
        self._decreased_at = now
        self._set_rate(self._start)
        # One interval of silence first: the request after a 429 would meet the same empty quota.
        self._next_slot = max(self._next_slot, now + 1.0 / self.rate)

    def _climb(self, seconds: float) -> float:
        """The pace ``seconds`` of paced sending after a decrease: concave up to the peak, convex past it."""
        assert self._peak is not None
        if seconds < RECOVER_SECONDS:
            remaining = (1.0 - seconds / RECOVER_SECONDS) ** 3
            return self._peak - (self._peak - self._start) * remaining
        return self._peak * (1.0 + PROBE_GROWTH * (seconds - RECOVER_SECONDS) ** 3)

    def _set_rate(self, rate: float) -> None:
        self.rate = max(MIN_RATE, rate if self.max_rate is None else min(rate, self.max_rate))


@dataclass
class RateUsage:
    """What one fetch saw of its region's limiter: the 429s it met (``throttled``), the lowest and highest
    window of requests in flight (``window_min``/``window_max``) and the pace at its last request (``rate``,
    None while none was needed)."""

    throttled: int = 0
    window_min: int | None = None
    window_max: int | None = None
    rate: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def saw(self, state: AdaptiveRate) -> None:
        window = max(1, int(state.window))
        with self._lock:
            self.window_min = window if self.window_min is None else min(self.window_min, window)
            self.window_max = window if self.window_max is None else max(self.window_max, window)
            self.rate = state.rate

    def count_throttled(self) -> None:
        with self._lock:
            self.throttled += 1


class RegionLimiter:
    """The thread-safe :class:`AdaptiveRate` of one region: ``acquire`` before each request (it waits for the
    window and the pace), then ``answered`` or ``failed`` with what came back."""

    def __init__(
        self,
        key: str,
        *,
        max_rate: float | None = None,
        max_concurrency: int,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self._clock = clock
        self._changed = threading.Condition()
        self._state = AdaptiveRate(max_rate, max_concurrency, clock(), adaptive)
        # Tickets of the requests waiting, first come first served: none waits behind later ones for long.
        self._tickets = 0
        self._queue: deque[int] = deque()

    @property
    def rate(self) -> float | None:
        """Requests a second now allowed; None while no pace is needed."""
        return self._state.rate

    @property
    def window(self) -> int:
        """Requests now allowed in flight."""
        return max(1, int(self._state.window))

    @property
    def throttled(self) -> int:
        """429 answers met since the limiter was made, by every client that shares it."""
        return self._state.throttled

    def configure(self, max_rate: float | None, max_concurrency: int) -> None:
        with self._changed:
            self._state.configure(max_rate, max_concurrency)
            self._changed.notify_all()

    def acquire(self, usage: RateUsage | None = None) -> Permit:
        """Waits until one more request may be sent, in the order of asking, and returns the leave to send it."""
        asked = time.monotonic()
        paced = False
        with self._changed:
            ticket = self._tickets
            self._tickets += 1
            self._queue.append(ticket)
            while True:
                wait = self._state.wait_time(self._clock()) if self._queue[0] == ticket else None
                if wait == 0:
                    break
                # Woken by every answer, change and leave taken: a decrease slows the next request, not a later one.
                paced = paced or (wait is not None)
                self._changed.wait(wait)
            self._queue.popleft()
            permit = self._state.take(self._clock(), paced)
            if usage is not None:
                usage.saw(self._state)
            self._changed.notify_all()
        _waits.seconds = getattr(_waits, "seconds", 0.0) + time.monotonic() - asked
        return permit

    def answered(self, permit: Permit) -> None:
        with self._changed:
            self._state.answered(permit, self._clock())
            self._changed.notify_all()

    def failed(self, permit: Permit, kind: str | None, message: str | None, usage: RateUsage | None = None) -> None:
        """The request of ``permit`` failed with retry ``kind`` (None: not retried; a 429 is THROTTLED)."""
        with self._changed:
            if kind == THROTTLED:
                self._state.throttled_by(permit, message, self._clock())
                if usage is not None:
                    usage.count_throttled()
            else:
                self._state.failed(permit, kind, self._clock())
            self._changed.notify_all()

    def __repr__(self) -> str:
        rate = "none" if self.rate is None else f"{self.rate:.1f}/s"
        return f"RegionLimiter({self.key!r}, rate={rate}, window={self.window}, throttled={self.throttled})"


# Seconds each thread has spent waiting in acquire (any limiter): a request's retry budget does not count them.
_waits = threading.local()


def excluding_waits(clock: Callable[[], float]) -> Callable[[], float]:
    """``clock`` less the time the calling thread spent waiting for leave to send: the clock of a retry budget,
    which counts a request's sending, answers and waits between attempts, not its turn at the region's pace."""
    return lambda: clock() - getattr(_waits, "seconds", 0.0)


class _Registry:
    """The process's limiters, one per key, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limiters: dict[str, RegionLimiter] = {}

    def get(self, key: str, max_rate: float | None, max_concurrency: int) -> RegionLimiter:
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = RegionLimiter(key, max_rate=max_rate, max_concurrency=max_concurrency)
                return limiter
        limiter.configure(max_rate, max_concurrency)
        return limiter


_registry_lock = threading.Lock()
_registry: _Registry | None = None


def region_key(region: str | None, endpoint: str) -> str:
    """What the limiter of a client is shared by: its region and endpoint (one gateway and its quota). Targets
    of one region share the region's endpoint; one whose endpoint is overridden talks to another gateway."""
    return f"{region or '(no region)'} {endpoint}"


def region_limiter(key: str, *, max_rate: float | None, max_concurrency: int) -> RegionLimiter:
    """The process-wide limiter of ``key`` (see :func:`region_key`), made on first use; a later caller's
    ceilings replace the earlier ones (the targets of one region share its ``max_rate``)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = _Registry()
        registry = _registry
    return registry.get(key, max_rate, max_concurrency)
