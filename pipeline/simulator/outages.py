"""Stretches of failing answers on the jobs route, each bounded by seconds or by requests: the API down (every
answer a 500 or 503) and storms (about half the answers fail: throttled, server errors, an HTML 502, connection
resets, cut bodies, and now and then a long stall).

    sim.outages.down(seconds=30)                                  # every jobs request answers 503 for 30 s
    sim.outages.storm(seconds=120, seed=3)                        # a storm of two minutes, its stalls 70 s long
    sim.outages.storm(requests=200, stall_seconds=1.0, seed=3)    # one for the next 200 requests, short stalls

Queued and random faults (``sim.faults``) come first; an outage answers the requests they leave alone.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.simulator.faults import Fault

# The failures of a storm and their shares among its failed answers; stalls come apart, every `stall_every`-th.
STORM_MIX: dict[str, float] = {"429": 0.3, "500": 0.25, "502_html": 0.2, "drop": 0.15, "truncate": 0.1}
DOWN_STATUSES = (500, 503)
DEFAULT_STALL_SECONDS = 70.0
DEFAULT_STALL_EVERY = 50


def _check_bounds(seconds: float | None, requests: int | None) -> None:
    if seconds is None and requests is None:
        raise ValueError("an outage needs an end: give seconds, requests or both")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0):
        raise ValueError(f"seconds must be a number > 0, got {seconds!r}")
    if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1):
        raise ValueError(f"requests must be an integer >= 1, got {requests!r}")


@dataclass
class _Stretch:
    """One outage: what it answers, until when (monotonic seconds) and for how many more requests."""

    draw: Callable[[int], Fault | None]
    until: float | None
    requests_left: int | None
    served: int = 0


class Outages:
    """The outage in force on the jobs route, if any; a new one replaces the one before. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stretch: _Stretch | None = None

    def down(self, *, seconds: float | None = None, requests: int | None = None, status: int = 503) -> None:
        """Every jobs request answers ``status`` (500 or 503) for ``seconds`` from now, or for the next ``requests``
        requests, whichever ends first."""
        _check_bounds(seconds, requests)
        if status not in DOWN_STATUSES:
            raise ValueError(f"status must be one of {DOWN_STATUSES}, got {status!r}")
        fault = Fault(str(status))
        self._begin(lambda number: fault, seconds, requests)

    def storm(self, *, seconds: float | None = None, requests: int | None = None, failure_share: float = 0.5,
              stall_seconds: float = DEFAULT_STALL_SECONDS, stall_every: int = DEFAULT_STALL_EVERY,
              retry_after: int = 1, seed: int = 0) -> None:
        """For ``seconds`` from now or the next ``requests`` requests, a share ``failure_share`` of the jobs answers
        fail as STORM_MIX says (seeded draws), and every ``stall_every``-th request is held ``stall_seconds``
        before its answer. A 429 asks for ``retry_after`` seconds."""
        _check_bounds(seconds, requests)
        if isinstance(failure_share, bool) or not isinstance(failure_share, (int, float)) or not 0 <= failure_share <= 1:
            raise ValueError(f"failure_share must be within 0..1, got {failure_share!r}")
        if isinstance(stall_every, bool) or not isinstance(stall_every, int) or stall_every < 1:
            raise ValueError(f"stall_every must be an integer >= 1, got {stall_every!r}")
        if not isinstance(stall_seconds, (int, float)) or stall_seconds < 0:
            raise ValueError(f"stall_seconds must be a number >= 0, got {stall_seconds!r}")
        rng = random.Random(seed)
        stall = Fault("slow", delay=stall_seconds)
        mix = [(failure_share * share, Fault(kind, retry_after=retry_after)) for kind, share in STORM_MIX.items()]

        def draw(number: int) -> Fault | None:
            if number % stall_every == 0:
                return stall
            point = rng.random()
            for probability, fault in mix:
                if point < probability:
                    return fault
                point -= probability
            return None

        self._begin(draw, seconds, requests)

    def _begin(self, draw: Callable[[int], Fault | None], seconds: float | None, requests: int | None) -> None:
        with self._lock:
            self._stretch = _Stretch(draw, None if seconds is None else self._clock() + seconds, requests)

    def clear(self) -> None:
        """Ends the outage in force."""
        with self._lock:
            self._stretch = None

    @property
    def active(self) -> bool:
        """Whether an outage is in force now."""
        with self._lock:
            return self._current() is not None

    def _current(self) -> _Stretch | None:
        stretch = self._stretch
        if stretch is not None and (
            (stretch.until is not None and self._clock() >= stretch.until) or stretch.requests_left == 0
        ):
            self._stretch = stretch = None
        return stretch

    def next_fault(self) -> Fault | None:
        """The fault of the jobs request being answered, or None (no outage, or this one answers normally)."""
        with self._lock:
            stretch = self._current()
            if stretch is None:
                return None
            stretch.served += 1
            if stretch.requests_left is not None:
                stretch.requests_left -= 1
            return stretch.draw(stretch.served)
