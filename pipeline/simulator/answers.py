"""Answers the API should never give, served on purpose: broken pages, a total_count that lies, degraded records,
and error bodies in the nested shape.

    sim = DdsSimulator(SimulatorConfig(degraded_fraction=0.3))       # from the start, seeded by the config's seed
    sim.answers.break_answers("null_jobs", times=3)                  # or while serving: the next 3 jobs answers
    sim.answers.degrade(1.0, seed=5)                                 # every record from now on

The store's own view (``sim.store.visible_jobs``) stays the ground truth: these modes change only what the jobs
route answers.
"""

import json
import random
import threading
from dataclasses import replace
from typing import Any

from pipeline.simulator.jobs import JobQuery, JobStore
from pipeline.simulator.protocol import ApiError, Response, error_response, json_response

# A 200 whose JSON is not the jobs list the API promises. "records_not_objects" sends each record as a JSON string
# (a double-encoded page), "overlong_page" more records than the limit asked (a page with at least one job).
BROKEN_ANSWERS: tuple[str, ...] = ("null_jobs", "jobs_not_list", "records_not_objects", "overlong_page")
# How a degraded record differs from the job: one field left out, or an ended_at that is no time.
DEGRADATIONS: tuple[str, ...] = (
    "missing_name", "missing_instance_id", "missing_instance_name", "missing_fail_reason", "missing_status",
    "ended_at_not_a_time",
)
ERROR_SHAPES: tuple[str, ...] = ("flat", "nested")
UNREADABLE_TIME = "not-a-time"
_OVERLONG_EXTRA = 5


def check_answer_modes(broken_answer: str | None, reported_total_count: int | None, degraded_fraction: float,
                       error_shape: str) -> None:
    """ValueError naming the first of these settings that is out of its range."""
    if broken_answer is not None and broken_answer not in BROKEN_ANSWERS:
        raise ValueError(f"broken_answer must be one of {BROKEN_ANSWERS} or None, got {broken_answer!r}")
    if reported_total_count is not None and (
        isinstance(reported_total_count, bool) or not isinstance(reported_total_count, int) or reported_total_count < 0
    ):
        raise ValueError(f"reported_total_count must be an integer >= 0 or None, got {reported_total_count!r}")
    if isinstance(degraded_fraction, bool) or not isinstance(degraded_fraction, (int, float)) or not (
        0 <= degraded_fraction <= 1
    ):
        raise ValueError(f"degraded_fraction must be a number within 0..1, got {degraded_fraction!r}")
    if error_shape not in ERROR_SHAPES:
        raise ValueError(f"error_shape must be one of {ERROR_SHAPES}, got {error_shape!r}")


def degraded_record(job: dict[str, Any], degradation: str) -> dict[str, Any]:
    """``job`` as a degraded answer carries it: the field of ``degradation`` missing, or ended_at unreadable."""
    if degradation == "ended_at_not_a_time":
        return {**job, "ended_at": UNREADABLE_TIME}
    if degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {degradation!r}; known: {', '.join(DEGRADATIONS)}")
    missing = degradation.removeprefix("missing_")
    return {key: value for key, value in job.items() if key != missing}


def _degradation(job_id: str, fraction: float, seed: int, kinds: tuple[str, ...]) -> str | None:
    if fraction <= 0:
        return None
    draw = random.Random(f"{seed}:{job_id}:degraded")
    return kinds[int(draw.random() * len(kinds))] if draw.random() < fraction else None


def _maybe_degraded(job: dict[str, Any], degradation: str | None) -> dict[str, Any]:
    return job if degradation is None else degraded_record(job, degradation)


class AnswerModes:
    """How the jobs route spoils its answers; every setting can change while the simulator serves."""

    def __init__(self, *, seed: int = 7, broken_answer: str | None = None, reported_total_count: int | None = None,
                 degraded_fraction: float = 0.0, error_shape: str = "flat") -> None:
        check_answer_modes(broken_answer, reported_total_count, degraded_fraction, error_shape)
        self._lock = threading.Lock()
        self._broken, self._broken_left = broken_answer, None
        self._reported_total_count = reported_total_count
        self._degraded_fraction, self._degradation_seed, self._degradations = degraded_fraction, seed, DEGRADATIONS
        self._error_shape = error_shape

    def break_answers(self, kind: str | None, times: int | None = None) -> None:
        """The next ``times`` jobs answers (None: every one until told otherwise) are broken as ``kind``, one of
        BROKEN_ANSWERS; ``kind=None`` ends it."""
        check_answer_modes(kind, None, 0.0, "flat")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be an integer >= 1 or None, got {times!r}")
        with self._lock:
            self._broken, self._broken_left = kind, times

    def report_total_count(self, count: int | None) -> None:
        """Every answer from now on says ``total_count: count`` whatever the window holds (None: the true count)."""
        check_answer_modes(None, count, 0.0, "flat")
        with self._lock:
            self._reported_total_count = count

    def degrade(self, fraction: float, seed: int | None = None, kinds: tuple[str, ...] = DEGRADATIONS) -> None:
        """From now on a share ``fraction`` of the jobs comes degraded, each by one of ``kinds``. Which jobs, and how,
        depends only on ``seed`` and the job's id: a job is degraded the same way on every page and every sync."""
        check_answer_modes(None, None, fraction, "flat")
        if not kinds or any(kind not in DEGRADATIONS for kind in kinds):
            raise ValueError(f"kinds must be a non-empty selection of {DEGRADATIONS}, got {kinds!r}")
        with self._lock:
            self._degraded_fraction, self._degradations = fraction, tuple(kinds)
            if seed is not None:
                self._degradation_seed = seed

    def shape_errors(self, shape: str) -> None:
        """Error bodies from now on: ``flat`` {"error_code", "error_msg"} or ``nested`` {"error": {"code", "message"}}."""
        check_answer_modes(None, None, 0.0, shape)
        with self._lock:
            self._error_shape = shape

    def degradation_of(self, job_id: str) -> str | None:
        """How the job of ``job_id`` comes degraded at the current settings, or None when it comes whole."""
        with self._lock:
            return _degradation(job_id, self._degraded_fraction, self._degradation_seed, self._degradations)

    def _take_broken(self) -> str | None:
        with self._lock:
            kind = self._broken
            if kind is not None and self._broken_left is not None:
                self._broken_left -= 1
                if self._broken_left == 0:
                    self._broken = self._broken_left = None
            return kind

    def page(self, store: JobStore, project_id: str, query: JobQuery, include_total_count: bool) -> dict[str, Any]:
        """The JSON payload answering ``query``, spoiled as the current settings say."""
        broken = self._take_broken()
        if broken == "overlong_page":
            query = replace(query, limit=query.limit + _OVERLONG_EXTRA)
        jobs, total = store.query(project_id, query)
        with self._lock:
            fraction, seed, kinds = self._degraded_fraction, self._degradation_seed, self._degradations
        if fraction > 0:
            jobs = [_maybe_degraded(job, _degradation(job["id"], fraction, seed, kinds)) for job in jobs]
        if broken == "overlong_page" and jobs and len(jobs) <= query.limit - _OVERLONG_EXTRA:
            jobs += [jobs[0]] * (query.limit - _OVERLONG_EXTRA + 1 - len(jobs))
        payload: dict[str, Any] = {"jobs": jobs}
        if broken == "null_jobs":
            payload["jobs"] = None
        elif broken == "jobs_not_list":
            payload["jobs"] = {job["id"]: job for job in jobs}
        elif broken == "records_not_objects":
            payload["jobs"] = [json.dumps(job) for job in jobs] or [""]
        if include_total_count:
            with self._lock:
                reported = self._reported_total_count
            payload["total_count"] = total if reported is None else reported
        return payload

    def error_response(self, error: ApiError) -> Response:
        """The error answer in the current shape."""
        with self._lock:
            nested = self._error_shape == "nested"
        if nested:
            return json_response(error.status, {"error": {"code": error.error_code, "message": error.error_msg}})
        return error_response(error)
