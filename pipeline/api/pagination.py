"""Offset paging of one slice (at most 30 days) of the jobs list: a bounded look-ahead of concurrent pages."""

import json
import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from functools import partial
from operator import itemgetter

from pipeline.api.errors import DdsApiError, Problem
from pipeline.api.http import JobsAnswer
from pipeline.api.windows import TimeWindow

# Fetches the page at an offset, retries included; the predicate tells its retries when the page is no longer needed.
FetchPage = Callable[[int, Callable[[], bool]], JobsAnswer]
_NO_ID = "\0record without an id: "
_ID = itemgetter("id")

log = logging.getLogger(__name__)


def job_key(job: object) -> str:
    """What a job is told apart by: its ``id``; for a record without a usable one (the normalizer rejects and
    counts it) its JSON text, so that such a record is kept once instead of failing the whole page."""
    if isinstance(job, dict) and isinstance(job.get("id"), str) and job["id"]:
        return job["id"]
    return _NO_ID + json.dumps(job, sort_keys=True, default=str)


def job_keys(jobs: list) -> set[str]:
    """The job_key of every job, as a set."""
    # The usual page (every record a dict with a non-empty string id) in C loops, without job_key's checks per job:
    # these took a sixth of the client's CPU per page.
    if set(map(type, jobs)) <= {dict}:
        try:
            ids = set(map(_ID, jobs))
        except (KeyError, TypeError):  # a record without id, or with an id that cannot be hashed
            pass
        else:
            if set(map(type, ids)) <= {str} and "" not in ids:
                return ids
    return set(map(job_key, jobs))


@dataclass(frozen=True)
class Page:
    """One answer of the API: ``jobs`` as sent for ``slice`` from ``offset``, and ``total_count`` when sent.

    ``refetch`` marks the pages of the sequential second pass over a slice whose first pass came up short
    of its ``total_count``.
    """

    jobs: list[dict]
    slice: TimeWindow
    offset: int
    total_count: int | None
    refetch: bool = False


class SlicePager:
    """The pages of one slice, each job at least once even while jobs are created during the paging.

    Offsets step by ``page_size`` until a page comes back shorter: that first short (or empty) page ends the
    slice, whatever ``total_count`` says. With an ``executor``, up to ``concurrency`` requests run at once, never
    more than that many pages ahead of the answers, so a slice sends at most the pages its jobs fill plus
    ``concurrency``. ``total_count`` is only a hint: no offset past it is asked until the page before it came
    back full, so an honest count costs no request past the last page, and an inflated one costs no more than
    the look-ahead. Because jobs that appear or vanish shift offsets (the order is undocumented), a slice whose
    distinct jobs fall short of the largest ``total_count`` its pages reported while the count itself changed
    during the paging is paged once more, sequentially, and ``on_refetch`` is told. Without a count, a slice of
    more than one page asks its first page once more at the end (one request): jobs created in the window while
    it was paged land there when the API lists newest first, and any not seen make it page the slice once more.
    A job that appears after the last request is the next fetch's.
    """

    def __init__(
        self,
        fetch: FetchPage,
        slice_window: TimeWindow,
        *,
        page_size: int,
        executor: Executor | None,
        concurrency: int,
        on_refetch: Callable[[], None],
    ) -> None:
        self._fetch = fetch
        self._slice = slice_window
        self._page_size = page_size
        self._executor = executor
        self._ahead = concurrency if executor is not None else 1
        self._on_refetch = on_refetch
        self._seen: set[str] = set()
        self._totals: set[int] = set()

    def pages(self) -> Iterator[Page]:
        first = self._fetch(0, _never)
        yield self._page(first, 0)
        if len(first.jobs) < self._page_size:
            return
        total = first.total_count
        horizon = total if total is not None and total > self._page_size else None
        yield from self._pass(self._page_size, self._ahead, horizon)
        if total is None:
            yield from self._recheck_first_page()
            return
        # The largest count, not the first: jobs created in the window while it is paged come, newest first, on
        # pages already read, and only the counts of the later pages tell of them.
        total = max(self._totals)
        if len(self._seen) >= total:
            return
        if len(self._totals) > 1:
            self._on_refetch()
            yield from self._pass(0, 1, None, refetch=True)
        else:
            # The count never moved while the pages came: no job shifted, the count is wrong.
            log.warning("DDS API: total_count %d for window %s, but its pages held %d distinct jobs; the count is "
                        "taken as a hint only", total, self._slice, len(self._seen))

    def _recheck_first_page(self) -> Iterator[Page]:
        """Without a count, the first page asked once more tells whether jobs appeared on pages already read (the
        newest first, while the pass went on); if it holds any not seen, the slice is paged again sequentially."""
        again = self._fetch(0, _never)
        fresh = job_keys(again.jobs) - self._seen
        yield self._page(again, 0, refetch=True)
        if fresh:
            self._on_refetch()
            yield from self._pass(self._page_size, 1, None, refetch=True)

    def _page(self, answer: JobsAnswer, offset: int, refetch: bool = False) -> Page:
        self._seen.update(job_keys(answer.jobs))
        if answer.total_count is not None and not refetch:
            self._totals.add(answer.total_count)
        return Page(answer.jobs, self._slice, offset, answer.total_count, refetch)

    def _submit(self, offset: int, abandoned: Callable[[], bool]) -> "Future[JobsAnswer]":
        if self._executor is not None:
            return self._executor.submit(self._fetch, offset, abandoned)
        done: Future[JobsAnswer] = Future()
        try:
            done.set_result(self._fetch(offset, abandoned))
        except Exception as exc:  # handed over through the future, as the executor would
            done.set_exception(exc)
        return done

    def _pass(self, offset: int, ahead: int, horizon: int | None, refetch: bool = False) -> Iterator[Page]:
        """Pages from ``offset`` on until one comes back short, in the order they arrive: ``ahead`` requests in
        flight, none at or past ``horizon`` (what total_count promises) until the page before it came back full."""
        in_flight: dict[Future[JobsAnswer], int] = {}
        # The offset of the first short page: requests past it are not needed, and their retries give up.
        end = [math.inf]
        pass_ids: set[str] = set()
        try:
            while True:
                while len(in_flight) < ahead and offset < end[0] and (horizon is None or offset < horizon):
                    in_flight[self._submit(offset, partial(_past_the_end, offset, end))] = offset
                    offset += self._page_size
                needed = [future for future, page_offset in in_flight.items() if page_offset < end[0]]
                if not needed:
                    break
                done, _ = wait(needed, return_when=FIRST_COMPLETED)
                for future in done:
                    # Dropped once read: a done future holds its page, and a month's pages held to the end weigh
                    # more than all the rest of a run.
                    page_offset = in_flight.pop(future)
                    answer = future.result()
                    known = len(pass_ids)
                    pass_ids.update(job_keys(answer.jobs))
                    yield self._page(answer, page_offset, refetch)
                    if len(answer.jobs) < self._page_size:
                        end[0] = min(end[0], page_offset)
                        continue
                    if len(pass_ids) == known:
                        # A full page of nothing new means the API ignores offset: paging on would never end.
                        problem = Problem(
                            f"offset {page_offset} answered only jobs already seen; the API seems to ignore offset"
                        )
                        raise DdsApiError.rejected(problem, str(self._slice))
                    if horizon is not None and page_offset + self._page_size >= horizon:
                        horizon = None  # the last page the count promised was full: the count was short
            # Pages already requested past the short one: jobs shifted there are still worth keeping, but their
            # failure costs nothing, since the short page proved the end.
            for future, page_offset in list(in_flight.items()):
                del in_flight[future]
                if not future.cancel() and future.exception() is None:
                    yield self._page(future.result(), page_offset, refetch)
        finally:
            end[0] = -math.inf
            for future in in_flight:
                future.cancel()


def _never() -> bool:
    return False


def _past_the_end(offset: int, end: list[float]) -> bool:
    return offset > end[0]
