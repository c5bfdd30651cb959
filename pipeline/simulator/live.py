"""The live mode: jobs keep being created while clients page, on the simulator's own clock.

    sim = DdsSimulator(SimulatorConfig(live_jobs_per_request=3, live_seconds_per_request=2))

Before it answers each jobs request, the simulator moves its clock ``seconds_per_request`` seconds forward and
creates ``jobs_per_request`` new jobs, at the new time, in the project the request is for. Nothing depends on the
wall clock: which jobs exist after N requests depends only on the seed and N, so a test is deterministic whatever
the machine's pace (which page sees which job depends on the order concurrent requests are served in).

The simulator lists a window newest first by ``created_at`` (``order="newest_first"``, its default; the
provider's order is undocumented, so the client assumes none): every job created inside a window being paged lands on its first page and shifts every
later page down, the adversarial case for offset paging. ``order="oldest_first"`` appends them after the last page.
"""

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.simulator.jobs import JobStore


def check_live_settings(jobs_per_request: int, seconds_per_request: int) -> None:
    """ValueError naming the first live setting out of its range."""
    for name, value, low in (("live_jobs_per_request", jobs_per_request, 0),
                             ("live_seconds_per_request", seconds_per_request, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class CreatedJob:
    """A job the live mode created: its project, id, and the simulated moment (UTC) it was created at."""
    project_id: str
    id: str
    created_at: datetime


class LiveCreation:
    """Creates jobs per request served; ``created`` lists them in creation order. Off (the clock frozen too) when
    ``jobs_per_request`` is 0."""

    def __init__(self, jobs_per_request: int = 0, seconds_per_request: int = 1) -> None:
        check_live_settings(jobs_per_request, seconds_per_request)
        self.jobs_per_request = jobs_per_request
        self.seconds_per_request = seconds_per_request if jobs_per_request else 0
        self.created: list[CreatedJob] = []
        self._lock = threading.Lock()

    @property
    def on(self) -> bool:
        return self.jobs_per_request > 0

    def before_answer(self, store: JobStore, project_id: str) -> None:
        """One jobs request is about to be answered: the clock moves on and the new jobs appear."""
        if not self.on:
            return
        # One request's step at a time: the clock and the jobs created at it move together.
        with self._lock:
            store.advance(timedelta(seconds=self.seconds_per_request))
            now = store.now
            ids = store.add_jobs(self.jobs_per_request, now, project_id)
            self.created.extend(CreatedJob(project_id, job_id, now) for job_id in ids)

    def ids_created(self, project_id: str, start: datetime, end: datetime) -> set[str]:
        """The ids of the jobs created in ``project_id`` with start <= created_at < end."""
        with self._lock:
            return {job.id for job in self.created if job.project_id == project_id and start <= job.created_at < end}

    def describe(self) -> str:
        """One line for `dds-tasks simulate`."""
        return (f"live: {self.jobs_per_request} new job(s) and the clock {self.seconds_per_request} s on at each "
                "jobs request, listed newest first")

