"""The client of the DDS task center ("Querying Tasks and Details"): every job created in a time window."""

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

from requests.auth import AuthBase

from pipeline.api.http import JobsAnswer, JobsHttp, Timeout
from pipeline.api.pagination import Page, SlicePager
from pipeline.api.ratelimit import (
    RateUsage,
    RegionLimiter,
    excluding_waits,
    region_key,
    region_limiter,
)
from pipeline.api.retry import RETRY_KINDS, RetryPolicy, call_with_retries
from pipeline.api.windows import TimeWindow, format_api_time
from pipeline.values import DDS_ENDPOINT_EXAMPLE, check_concurrency, checked_http_url

__all__ = ["DdsTaskCenterClient", "FetchStats", "Page", "throttling_warning"]

MAX_PAGE_SIZE = 100  # the API's limit maximum
# A run whose requests were answered 429 more often than this warns once: each 429 is ridden out (and logged at
# INFO), but so many mean the quota, shared with the tenant's other tools, is too small for the run.
THROTTLED_WARNING_SHARE = 0.05
_PROJECT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass
class FetchStats:
    """What one fetch took: ``slices`` queried (each at most 30 days), ``pages`` received, ``requests`` sent
    (retries included), ``retries`` by kind, ``refetches`` (slices paged a second time because they came up
    short of their total_count while that count moved: jobs appeared or vanished during the paging), ``jobs``
    distinct so far, wall ``seconds``, and what the region's limiter did (``pacing``: 429s met, the range of
    requests allowed in flight, the pace allowed at the end).
    """

    slices: int = 0
    pages: int = 0
    requests: int = 0
    retries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETRY_KINDS, 0))
    refetches: int = 0
    jobs: int = 0
    seconds: float = 0.0
    pacing: RateUsage = field(default_factory=RateUsage)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def count_retry(self, kind: str) -> None:
        with self._lock:
            self.retries[kind] = self.retries.get(kind, 0) + 1

    def count_refetch(self) -> None:
        with self._lock:
            self.refetches += 1

    def as_metadata(self) -> dict[str, int | float | None]:
        """Plain numbers, e.g. for Dagster metadata: totals plus ``retries_<kind>`` for each kind, and the pace:
        ``rate_per_s`` (requests a second over the fetch), ``throttled`` (429 answers, each retried unless the
        fetch failed), ``concurrency_min``/``concurrency_max`` (requests allowed in flight), ``rate_allowed``
        (requests a second allowed at the end; None when no pace was needed)."""
        pacing = self.pacing
        with self._lock:
            return {
                "slices": self.slices,
                "pages": self.pages,
                "requests": self.requests,
                "retries": sum(self.retries.values()),
                **{f"retries_{kind}": count for kind, count in self.retries.items()},
                "refetches": self.refetches,
                "jobs": self.jobs,
                "seconds": round(self.seconds, 3),
                "rate_per_s": round(self.requests / self.seconds, 2) if self.seconds > 0 else 0.0,
                "throttled": pacing.throttled,
                "concurrency_min": pacing.window_min or 0,
                "concurrency_max": pacing.window_max or 0,
                "rate_allowed": None if pacing.rate is None else round(pacing.rate, 2),
            }


    def pace_line(self) -> str:
        """The fetch's pace for the run log: requests a second, 429s ridden out, window, pace allowed at the end."""
        figures = self.as_metadata()
        allowed = figures["rate_allowed"]
        throttled = (f"{figures['throttled']} answered 429 (throttled, waited out and sent again), "
                     if figures["throttled"] else "")
        return (f"{figures['rate_per_s']:.1f} requests/s, {throttled}"
                f"{figures['concurrency_min']}-{figures['concurrency_max']} allowed in flight, "
                f"pace allowed at the end: {'no limit' if allowed is None else f'{allowed:g}/s'}")


def throttling_warning(fetches: Iterable[FetchStats]) -> str | None:
    """The run's one warning when more than THROTTLED_WARNING_SHARE of the requests of its ``fetches`` were
    answered 429, with the figures; else None."""
    requests = throttled = 0
    for stats in fetches:
        requests += stats.requests
        throttled += stats.pacing.throttled
    if not requests or throttled <= THROTTLED_WARNING_SHARE * requests:
        return None
    return (f"DDS API throttling: {throttled} of {requests} requests ({throttled / requests:.1%}) were answered 429 "
            f"in this run, more than {THROTTLED_WARNING_SHARE:.0%}; each was waited out and sent again, but the "
            "gateway's quota (shared with the tenant's other tools) is tight: set DDS_MAX_RATE under it, or run "
            "other heavy API users at another time")


def _validated_endpoint(endpoint: object, insecure_http: bool) -> str:
    return checked_http_url(endpoint, "endpoint", DDS_ENDPOINT_EXAMPLE, insecure_http=insecure_http)


def _validated_project_id(project_id: object) -> str:
    if not isinstance(project_id, str) or not project_id or not set(project_id) <= _PROJECT_ID_CHARS:
        raise ValueError(f"project_id must be a non-empty string of letters, digits, '-' or '_', got {project_id!r}")
    return project_id


def _validated_page_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an integer 1..{MAX_PAGE_SIZE}, got {value!r}")
    return value


def _validated_rate(max_rate: object) -> float | None:
    if max_rate is None:
        return None
    if isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)) or not math.isfinite(max_rate) \
            or max_rate <= 0:
        raise ValueError(f"max_rate must be a number of requests a second > 0, or None, got {max_rate!r}")
    return float(max_rate)


def _validated_timeout(timeout: object) -> Timeout:
    values = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(values) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"timeout must be seconds > 0 or a (connect, read) pair of them, got {timeout!r}")
    return float(values[0]), float(values[1])


def _validated_filters(status: str | None, name: str | None, job_id: str | None) -> dict[str, str]:
    filters = {}
    for param, value in (("status", status), ("name", name), ("id", job_id)):
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            raise ValueError(f"filter {param} must be a non-empty printable string, got {value!r}")
        filters[param] = value
    return filters


class DdsTaskCenterClient:
    """Reads ``GET {endpoint}/v3.1/{project_id}/jobs`` for a time window of any length.

    A window is cut into slices of at most 30 days (the API's limit); each slice is paged by offset,
    ``max_concurrency`` requests at a time at most, every request retried per ``retry`` (within its time budget;
    an answer that is not the promised jobs list counts as a failure, never as data). ``timeout`` is (connect,
    read) seconds: a stalled answer fails at the read timeout and is retried. Requests go at the pace of the
    region's limiter (pipeline.api.ratelimit), shared with every client of the same ``region`` and endpoint in
    the process; it never passes ``max_rate`` requests a second. No request follows a redirect: a 3xx is an error saying to set ``endpoint_setting`` (the setting
    the endpoint came from) to the final address. An ``http://`` endpoint must be on loopback (the simulator) unless
    ``insecure_http`` (DDS_ALLOW_INSECURE_HTTP): the credentials would cross the network in clear text. The client is thread-safe; close it (or use it as a context
    manager).
    """

    def __init__(
        self,
        endpoint: str,
        project_id: str,
        auth: AuthBase | None = None,
        *,
        max_concurrency: int = 4,
        page_size: int = MAX_PAGE_SIZE,
        timeout: Timeout = (5.0, 60.0),
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        region: str | None = None,
        max_rate: float | None = None,
        endpoint_setting: str = "DDS_ENDPOINT",
        insecure_http: bool = False,
    ) -> None:
        self.endpoint = _validated_endpoint(endpoint, insecure_http)
        self.project_id = _validated_project_id(project_id)
        if auth is not None and not isinstance(auth, AuthBase):
            raise ValueError(f"auth must be a requests AuthBase such as TokenAuth, got {type(auth).__name__}")
        self.max_concurrency = check_concurrency(max_concurrency, "max_concurrency")
        self.page_size = _validated_page_size(page_size)
        self.timeout = _validated_timeout(timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self.retry = retry or RetryPolicy()
        # A request's retry budget counts its attempts and the waits between them, not its turns at the pace.
        self._retry_per_request = replace(self.retry, clock=excluding_waits(self.retry.clock))
        if not isinstance(verify, (bool, str)):
            raise ValueError(f"verify must be a bool or a CA bundle path, got {type(verify).__name__}")
        self.max_rate = _validated_rate(max_rate)
        if region is not None and not isinstance(region, str):
            raise ValueError(f"region must be a region name or None, got {type(region).__name__}")
        self.limiter = self._limiter_for(region_key(region, self.endpoint))
        self._auth = auth
        self._http = JobsHttp(
            self.endpoint, self.project_id, auth, timeout=self.timeout, verify=verify, pool_size=self.max_concurrency,
            limiter=self.limiter, endpoint_setting=endpoint_setting,
        )

    def _limiter_for(self, key: str) -> RegionLimiter:
        """The limiter every request waits for: the region's, shared by the clients of the process."""
        return region_limiter(key, max_rate=self.max_rate, max_concurrency=self.max_concurrency)

    def iter_pages(
        self,
        window: TimeWindow,
        *,
        status: str | None = None,
        name: str | None = None,
        job_id: str | None = None,
        stats: FetchStats | None = None,
    ) -> Iterator[Page]:
        """The pages for ``window`` as they arrive (a job may come twice); ``stats`` is kept up to date.

        Arguments are checked here, before any request; requests start at the first ``next()``.
        """
        if not isinstance(window, TimeWindow):
            raise ValueError(f"window must be a TimeWindow, got {type(window).__name__}")
        filters = _validated_filters(status, name, job_id)
        return self._pages(window, filters, stats if stats is not None else FetchStats())

    def _pages(self, window: TimeWindow, filters: dict[str, str], stats: FetchStats) -> Iterator[Page]:
        started = time.monotonic()
        executor = None
        if self.max_concurrency > 1:
            executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="dds-pages")
        try:
            for slice_window in window.split():
                stats.slices += 1
                fetch = partial(self._fetch_page, slice_window, filters, stats)
                pager = SlicePager(
                    fetch,
                    slice_window,
                    page_size=self.page_size,
                    executor=executor,
                    concurrency=self.max_concurrency,
                    on_refetch=stats.count_refetch,
                )
                for page in pager.pages():
                    stats.pages += 1
                    stats.seconds = time.monotonic() - started
                    yield page
        finally:
            stats.seconds = time.monotonic() - started
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    def _fetch_page(
        self,
        slice_window: TimeWindow,
        filters: dict[str, str],
        stats: FetchStats,
        offset: int,
        abandoned: Callable[[], bool],
    ) -> JobsAnswer:
        params = {
            "start_time": format_api_time(slice_window.start),
            "end_time": format_api_time(slice_window.end),
            **filters,
            "offset": offset,
            "limit": self.page_size,
        }
        return call_with_retries(
            partial(self._http.get_jobs, params, stats.pacing),
            self._retry_per_request,
            window=str(slice_window),
            on_attempt=stats.count_request,
            on_retry=stats.count_retry,
            abandoned=abandoned,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "DdsTaskCenterClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        auth = type(self._auth).__name__ if self._auth is not None else None
        return (
            f"DdsTaskCenterClient(endpoint={self.endpoint!r}, project_id={self.project_id!r}, auth={auth}, "
            f"max_concurrency={self.max_concurrency}, max_rate={self.max_rate}, page_size={self.page_size})"
        )
