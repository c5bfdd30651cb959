"""Offset paging of one slice (at most 30 days) of the jobs list, concurrent when the API tells the total."""

import json
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass
from operator import itemgetter

from pipeline.api.errors import DdsApiError, Problem
from pipeline.api.http import JobsAnswer
from pipeline.api.windows import TimeWindow

# Fetches the page at an offset, retries included.
FetchPage = Callable[[int], JobsAnswer]
_NO_ID = "\0record without an id: "
_ID = itemgetter("id")


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

    Offsets step by ``page_size`` until a page comes back shorter. With an ``executor``, ``concurrency``
    requests run at once: when the first page carries ``total_count``, every remaining offset is requested
    up front; without it, the next ``concurrency`` offsets are kept in flight until a short page. Because
    jobs that appear or vanish shift offsets (the order is undocumented), a slice whose distinct jobs fall
    short of ``total_count`` is paged once more, sequentially, and ``on_refetch`` is told.
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

    def pages(self) -> Iterator[Page]:
        first = self._fetch(0)
        yield self._page(first, 0)
        if len(first.jobs) < self._page_size:
            return
        total = first.total_count
        if total is not None and self._executor is not None:
            yield from self._all_offsets_at_once(total)
        else:
            yield from self._consecutive(self._page_size, self._ahead)
        if total is not None and len(self._seen) < total:
            self._on_refetch()
            yield from self._consecutive(0, ahead=1, refetch=True)

    def _page(self, answer: JobsAnswer, offset: int, refetch: bool = False) -> Page:
        self._seen.update(job_keys(answer.jobs))
        return Page(answer.jobs, self._slice, offset, answer.total_count, refetch)

    def _submit(self, offset: int) -> "Future[JobsAnswer]":
        if self._executor is not None:
            return self._executor.submit(self._fetch, offset)
        done: Future[JobsAnswer] = Future()
        try:
            done.set_result(self._fetch(offset))
        except Exception as exc:  # handed over through the future, as the executor would
            done.set_exception(exc)
        return done

    def _all_offsets_at_once(self, total: int) -> Iterator[Page]:
        offsets = range(self._page_size, total, self._page_size)
        futures = {self._submit(offset): offset for offset in offsets}
        # Jobs created since the first page may have pushed more behind the last offset the total promised.
        tail_full = not offsets
        try:
            for future in as_completed(futures):
                # Dropped once read: a done future holds its page, and a month's pages held to the end weigh more
                # than all the rest of a run.
                offset = futures.pop(future)
                answer = future.result()
                yield self._page(answer, offset)
                if offset == offsets[-1]:
                    tail_full = len(answer.jobs) >= self._page_size
        finally:
            for future in futures:
                future.cancel()
        if tail_full:
            yield from self._consecutive(offsets[-1] + self._page_size if offsets else self._page_size, self._ahead)

    def _consecutive(self, offset: int, ahead: int, refetch: bool = False) -> Iterator[Page]:
        """Pages from ``offset`` on, in order, until one comes back short; ``ahead`` requests in flight."""
        in_flight: deque[tuple[int, Future[JobsAnswer]]] = deque()
        pass_ids: set[str] = set()
        try:
            while True:
                while len(in_flight) < ahead:
                    in_flight.append((offset, self._submit(offset)))
                    offset += self._page_size
                page_offset, future = in_flight.popleft()
                answer = future.result()
                known = len(pass_ids)
                pass_ids.update(job_keys(answer.jobs))
                yield self._page(answer, page_offset, refetch)
                if len(answer.jobs) < self._page_size:
                    break
                if len(pass_ids) == known:
                    # A full page of nothing new means the API ignores offset: paging on would never end.
                    problem = Problem(
                        f"offset {page_offset} answered only jobs already seen; the API seems to ignore offset"
                    )
                    raise DdsApiError.rejected(problem, str(self._slice))
            # Pages already requested past the short one: jobs shifted there are still worth keeping, but
            # their failure costs nothing, since the short page proved the end.
            for page_offset, future in in_flight:
                if not future.cancel() and future.exception() is None:
                    yield self._page(future.result(), page_offset, refetch)
        finally:
            for _, future in in_flight:
                future.cancel()
