"""Seeded fake DDS task-center jobs, and the store that answers list queries against a frozen clock.

A job is generated once with a planned end and a final status; what the API shows (Running with a
progress, or Completed/Failed with an end time) is derived from the simulated clock at answer time.
"""

import bisect
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

TASK_NAMES: tuple[str, ...] = (
    "CreateMongoDB", "CreateMongoDBReplica", "CreateMongoDBReplicaSingle", "EnlargeMongoDBVolume",
    "ResizeMongoDBInstance", "ResizeDfvMongoDBInstance", "EnlargeMongoDBGroup", "ReplicaSetEnlargeNode",
    "AddReadonlyNode", "RestartInstance", "RestartGroup", "RestartNode", "RestartReplicaSetInstance",
    "RestartReplicaSingleInstance", "SwitchPrimary", "ModifyIp", "ModifySecurityGroup", "ModifyPort",
    "BindPublicIP", "UnbindPublicIP", "SwitchInstanceSSL", "AzMigrate", "CreateIp", "ModifyOpLogSize",
    "RestoreMongoDB", "RestoreMongoDB_Replica", "RestoreMongoDB_Replica_Single", "RestoreMongoDB_Replica_PITR",
    "MongodbSnapshotBackup", "MongodbSnapshotEBackup", "MongodbRestoreData2CurrentInstance",
    "MongodbRestoreData2NewInstance", "MongodbPitr2CurrentInstance", "MongodbPitr2NewInstance",
    "MongodbRecycleBackup", "MongodbRestoreTable", "UpgradeDatabaseVersion",
)

_QUICK = (3, 120)
_RESTART = (30, 300)
_CREATE = (300, 1500)
_RESIZE = (300, 2400)
_RESTORE = (600, 3600)
# Planned duration range in seconds per task name: configuration changes take seconds, restores up to an hour.
DURATION_RANGES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("CreateMongoDB", "CreateMongoDBReplica", "CreateMongoDBReplicaSingle"), _CREATE),
    **dict.fromkeys(("ResizeMongoDBInstance", "ResizeDfvMongoDBInstance", "EnlargeMongoDBGroup",
                     "ReplicaSetEnlargeNode", "AddReadonlyNode"), _RESIZE),
    **dict.fromkeys(("RestartInstance", "RestartGroup", "RestartNode", "RestartReplicaSetInstance",
                     "RestartReplicaSingleInstance"), _RESTART),
    **dict.fromkeys(("SwitchPrimary", "ModifyIp", "ModifySecurityGroup", "ModifyPort", "BindPublicIP",
                     "UnbindPublicIP", "CreateIp", "ModifyOpLogSize", "MongodbRecycleBackup"), _QUICK),
    **dict.fromkeys(("RestoreMongoDB", "RestoreMongoDB_Replica", "RestoreMongoDB_Replica_Single",
                     "RestoreMongoDB_Replica_PITR", "MongodbRestoreData2CurrentInstance",
                     "MongodbRestoreData2NewInstance", "MongodbPitr2CurrentInstance", "MongodbPitr2NewInstance",
                     "MongodbRestoreTable"), _RESTORE),
    "EnlargeMongoDBVolume": (60, 600),
    "SwitchInstanceSSL": (60, 300),
    "AzMigrate": (900, 3600),
    "MongodbSnapshotBackup": (60, 1200),
    "MongodbSnapshotEBackup": (120, 1800),
    "UpgradeDatabaseVersion": (600, 3600),
}
MAX_DURATION_S = max(high for _, high in DURATION_RANGES.values())
# Automated daily backups dominate a real task center; restarts and small changes come next.
_WEIGHTS = {"MongodbSnapshotBackup": 30, "MongodbSnapshotEBackup": 5, "MongodbRecycleBackup": 4,
            **dict.fromkeys(("RestartInstance", "RestartNode", "SwitchPrimary", "ModifySecurityGroup"), 3)}
_CUM_WEIGHTS = list(accumulate(_WEIGHTS.get(name, 1) for name in TASK_NAMES))

FAILED_SHARE = 0.05
FAIL_REASONS: tuple[str, ...] = (
    "The instance status is abnormal. Try again later.",
    "Insufficient resources in the selected AZ. Select another AZ or try again later.",
    "Insufficient quota. Apply for a higher quota and try again.",
    "The node did not respond within the timeout period.",
    "Backup failed: the oplog window does not cover the backup period.",
    "Failed to attach the volume: EVS service error.",
    "Restoration failed: the backup file is damaged or has expired.",
    "The target instance version is earlier than the source instance version.",
)
UTC_OFFSETS_MIN = (0, 480, -300)
_SUFFIXES = {minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
             for minutes in UTC_OFFSETS_MIN}
_INSTANCE_WORDS = ("orders", "billing", "profile", "catalog", "session", "audit", "events", "search",
                   "inventory", "reports", "chat", "fwyrestore")
INSTANCES_PER_PROJECT = 12
RUNNING_ENDED_AT_STYLES = ("empty", "null", "missing")
ORDERS = ("newest_first", "oldest_first")
_DAY_S = 86400
_CACHE_ENTRIES = 128


@dataclass(slots=True)
class Job:
    """One task as the provider holds it: the job runs from `created` until `planned_end` (epoch seconds),
    then takes `final_status`; its timestamps are rendered in the zone `utc_offset_min` minutes from UTC."""
    id: str
    name: str
    instance_id: str
    instance_name: str
    created: int
    planned_end: int
    final_status: str
    fail_reason: str
    utc_offset_min: int


def _uuid4(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def instance_pool(seed: int, project_id: str) -> list[tuple[str, str]]:
    """The (instance_id, instance_name) pairs whose jobs a project shows."""
    rng = random.Random(f"{seed}:{project_id}:instances")
    return [(f"{rng.getrandbits(128):032x}in02", f"dds-{rng.getrandbits(16):04x}-{rng.choice(_INSTANCE_WORDS)}")
            for _ in range(INSTANCES_PER_PROJECT)]


def new_job(rng: random.Random, instances: list[tuple[str, str]], created: int) -> Job:
    """A job created at `created` (epoch seconds), its kind, duration and fate drawn from `rng`."""
    # One uniform draw per attribute, scaled by hand: Random.choice/randint cost several calls each, and
    # generating 300,000 jobs must take seconds, not tens of seconds.
    draw = rng.random
    name = TASK_NAMES[bisect.bisect(_CUM_WEIGHTS, draw() * _CUM_WEIGHTS[-1])]
    low, high = DURATION_RANGES[name]
    instance_id, instance_name = instances[int(draw() * len(instances))]
    failed = draw() < FAILED_SHARE
    return Job(id=_uuid4(rng), name=name, instance_id=instance_id, instance_name=instance_name, created=created,
               planned_end=created + low + int(draw() * (high - low + 1)),
               final_status="Failed" if failed else "Completed",
               fail_reason=FAIL_REASONS[int(draw() * len(FAIL_REASONS))] if failed else "",
               utc_offset_min=UTC_OFFSETS_MIN[int(draw() * len(UTC_OFFSETS_MIN))])


def generate_day(seed: int, project_id: str, day: date, jobs_per_day: int,
                 instances: list[tuple[str, str]]) -> list[Job]:
    """The jobs created on one UTC day; the same inputs always give the same jobs, whatever else exists."""
    rng = random.Random(f"{seed}:{project_id}:{day.isoformat()}")
    count = max(0, round(jobs_per_day * rng.uniform(0.8, 1.2)))
    day_start = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    return [new_job(rng, instances, day_start + int(rng.random() * _DAY_S)) for _ in range(count)]


def format_api_time(epoch_s: int, utc_offset_min: int) -> str:
    """`2022-09-05T06:24:14+0800`: the provider's timestamp, offset without a colon."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s + utc_offset_min * 60)) + _SUFFIXES[utc_offset_min]


_API_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:?\d{2})")
DEFAULT_LIMIT = 100
MAX_LIMIT = 100
MAX_SPAN = timedelta(days=30)


class InvalidQuery(ValueError):
    """A list request the provider would refuse with 400 DBS.200001; the message names the parameter."""


@dataclass(frozen=True)
class JobQuery:
    """One validated list request: jobs with start <= created <= end (epoch seconds, inclusive both ends),
    exact-match filters (None: no filter), and the page [offset, offset + limit) of the ordered result."""
    start: int
    end: int
    status: str | None = None
    name: str | None = None
    id: str | None = None
    offset: int = 0
    limit: int = DEFAULT_LIMIT


def parse_api_time(parameter: str, text: str | None) -> datetime:
    """`yyyy-mm-ddThh:mm:ss` followed by `Z`, `±hhmm` or `±hh:mm`, as a UTC-aware datetime."""
    if not text:
        raise InvalidQuery(f"Invalid parameter {parameter}: it is required")
    match = _API_TIME.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        zone = "+0000" if match[2] == "Z" else match[2].replace(":", "")
        return datetime.strptime(match[1] + zone, "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc)
    except ValueError:
        raise InvalidQuery(f"Invalid parameter {parameter}: {text!r} is not yyyy-mm-ddThh:mm:ssZ "
                           "(Z, +hhmm or +hh:mm)") from None


def _parse_count(parameter: str, text: str | None, default: int, low: int, high: int | None) -> int:
    if text is None:
        return default
    # Digits only, strictly: int() would also take "+5", " 5" or "1_0", and a client must not rely on those.
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else -1
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidQuery(f"Invalid parameter {parameter}: {text[:40]!r} is not an integer {bounds}")
    return value


def parse_job_query(params: dict[str, str]) -> JobQuery:
    """Validates the query parameters of `GET /v3.1/{project_id}/jobs` as the provider does."""
    start = parse_api_time("start_time", params.get("start_time"))
    end = parse_api_time("end_time", params.get("end_time"))
    if end <= start:
        raise InvalidQuery("Invalid parameter end_time: it must be later than start_time")
    if end - start > MAX_SPAN:
        raise InvalidQuery("Invalid parameter end_time: the time span cannot be longer than 30 days")
    return JobQuery(start=int(start.timestamp()), end=int(end.timestamp()), status=params.get("status") or None,
                    name=params.get("name") or None, id=params.get("id") or None,
                    offset=_parse_count("offset", params.get("offset"), 0, 0, None),
                    limit=_parse_count("limit", params.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT))


def _utc_epoch(moment: datetime, what: str) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be time-zone aware, got the naive {moment.isoformat()}")
    return int(moment.timestamp())


def _utc_day(epoch_s: int) -> date:
    return datetime.fromtimestamp(epoch_s, timezone.utc).date()


class JobStore:
    """Every project's jobs and the simulated clock.

    The clock is frozen: it moves only through advance(). A job is visible when it was created at or before
    now and within the retention; it is Running while now < its planned end. Every mutation bumps `version`,
    which keys the cache of filtered, ordered results, so paging a window costs O(limit) per page.
    """

    def __init__(self, *, seed: int, project_ids: Iterable[str], jobs_per_day: int, history_days: int,
                 retention_days: int, now: datetime, running_ended_at: str = "empty",
                 order: str = "newest_first") -> None:
        self._lock = threading.RLock()
        self._seed = seed
        self._jobs_per_day = jobs_per_day
        self._retention_s = retention_days * _DAY_S
        self._running_ended_at = running_ended_at
        self._newest_first = order == "newest_first"
        self._now = _utc_epoch(now, "now")
        self._version = 0
        self._added = 0
        self._instances = {pid: instance_pool(seed, pid) for pid in project_ids}
        self._jobs: dict[str, list[Job]] = {pid: [] for pid in self._instances}
        self._created: dict[str, list[int]] = {pid: [] for pid in self._instances}
        self._cache: OrderedDict[tuple[Any, ...], list[Job]] = OrderedDict()
        self._next_day = _utc_day(self._now) - timedelta(days=history_days)
        self._generate_through(_utc_day(self._now) + timedelta(days=1))

    @property
    def now(self) -> datetime:
        """The simulated clock, UTC."""
        return datetime.fromtimestamp(self._now, timezone.utc)

    @property
    def version(self) -> int:
        """Bumped by every mutation (clock, jobs); cached query results belong to one version."""
        return self._version

    @property
    def project_ids(self) -> tuple[str, ...]:
        return tuple(self._jobs)

    def has_project(self, project_id: str) -> bool:
        return project_id in self._jobs

    def job_count(self, project_id: str) -> int:
        """All jobs held for the project, visible or not (outside retention, or created after now)."""
        return len(self._project_jobs(project_id))

    def _project_jobs(self, project_id: str) -> list[Job]:
        if project_id not in self._jobs:
            raise ValueError(f"unknown project id {project_id!r}; the simulator serves {list(self._jobs)}")
        return self._jobs[project_id]

    def _generate_through(self, last_day: date) -> None:
        """Creates the jobs of the days up to `last_day` (inclusive) not generated yet."""
        if self._next_day > last_day:
            return
        for pid, instances in self._instances.items():
            day, new_jobs = self._next_day, []
            while day <= last_day:
                new_jobs.extend(generate_day(self._seed, pid, day, self._jobs_per_day, instances))
                day += timedelta(days=1)
            self._insert(pid, new_jobs)
        self._next_day = last_day + timedelta(days=1)

    def _insert(self, project_id: str, new_jobs: list[Job]) -> None:
        jobs = self._jobs[project_id]
        jobs.extend(new_jobs)
        jobs.sort(key=lambda job: (job.created, job.id))
        self._created[project_id] = [job.created for job in jobs]
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._cache.clear()

    def advance(self, delta: timedelta) -> None:
        """Moves the clock forward: jobs planned in the interval appear, Running jobs past their end finish."""
        seconds = delta.total_seconds()
        if seconds < 0 or seconds != int(seconds):
            raise ValueError(f"advance() takes a non-negative whole number of seconds, got {delta}")
        with self._lock:
            self._now += int(seconds)
            self._generate_through(_utc_day(self._now) + timedelta(days=1))
            self._changed()

    def complete_running(self) -> list[str]:
        """Ends every visible Running job now, with its planned final status; returns their ids."""
        with self._lock:
            ended = []
            for pid, jobs in self._jobs.items():
                created = self._created[pid]
                low = bisect.bisect_left(created, self._now - MAX_DURATION_S)
                for job in jobs[low:bisect.bisect_right(created, self._now)]:
                    if job.planned_end > self._now:
                        job.planned_end = self._now
                        ended.append(job.id)
            self._changed()
            return ended

    def end_job(self, job_id: str, status: str = "Failed", fail_reason: str = FAIL_REASONS[0]) -> None:
        """Ends the visible job of ``job_id`` now with ``status`` (a benchmark's failure at a known moment)."""
        with self._lock:
            job = next((job for jobs in self._jobs.values() for job in jobs if job.id == job_id), None)
            if job is None or job.created > self._now:
                raise ValueError(f"no visible job {job_id!r}")
            job.planned_end, job.final_status = self._now, status
            job.fail_reason = fail_reason if status == "Failed" else ""
            self._changed()

    def add_jobs(self, count: int, created_at: datetime | None = None, project_id: str | None = None) -> list[str]:
        """Adds `count` seeded jobs created at `created_at` (default: now) to a project (default: the first)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"add_jobs() count must be an integer >= 0, got {count!r}")
        pid = project_id if project_id is not None else next(iter(self._jobs))
        instances = self._instances.get(pid)
        if instances is None:
            raise ValueError(f"unknown project id {pid!r}; the simulator serves {list(self._jobs)}")
        with self._lock:
            created = self._now if created_at is None else _utc_epoch(created_at, "created_at")
            rng = random.Random(f"{self._seed}:{pid}:added:{self._added}")
            self._added += 1
            new_jobs = [new_job(rng, instances, created) for _ in range(count)]
            self._insert(pid, new_jobs)
            return [job.id for job in new_jobs]

    def _matching(self, project_id: str, start: int, end: int, status: str | None, name: str | None,
                  job_id: str | None) -> list[Job]:
        """Visible jobs with start <= created <= end passing the filters, in API order (cached per version)."""
        key = (project_id, start, end, status, name, job_id, self._version)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        jobs, created = self._project_jobs(project_id), self._created[project_id]
        low = bisect.bisect_left(created, max(start, self._now - self._retention_s))
        window = jobs[low:bisect.bisect_right(created, min(end, self._now))]
        if job_id is not None:
            window = [job for job in window if job.id == job_id]
        if name is not None:
            window = [job for job in window if job.name == name]
        if status is not None:
            window = [job for job in window if self._status(job) == status]
        if self._newest_first:
            window.reverse()
        self._cache[key] = window
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return window

    def query(self, project_id: str, query: JobQuery) -> tuple[list[dict[str, Any]], int]:
        """One page of the API's answer as JobInfo dicts, and the number of jobs matching overall."""
        with self._lock:
            matched = self._matching(project_id, query.start, query.end, query.status, query.name, query.id)
            page = matched[query.offset:query.offset + query.limit]
            return [self.render(job) for job in page], len(matched)

    def visible_jobs(self, project_id: str, start: datetime | None = None,
                     end: datetime | None = None) -> list[dict[str, Any]]:
        """Every JobInfo dict the API would answer for the window (inclusive, None: unbounded), unpaged."""
        low = -(2**62) if start is None else _utc_epoch(start, "start")
        high = 2**62 if end is None else _utc_epoch(end, "end")
        with self._lock:
            return [self.render(job) for job in self._matching(project_id, low, high, None, None, None)]

    def _status(self, job: Job) -> str:
        return "Running" if self._now < job.planned_end else job.final_status

    def render(self, job: Job) -> dict[str, Any]:
        """The job as the API shows it at the current clock; every field a string (ended_at aside, see config)."""
        running = self._now < job.planned_end
        info: dict[str, Any] = {"id": job.id, "name": job.name,
                                "status": "Running" if running else job.final_status,
                                "created_at": format_api_time(job.created, job.utc_offset_min)}
        if not running:
            info["ended_at"] = format_api_time(job.planned_end, job.utc_offset_min)
        elif self._running_ended_at != "missing":
            info["ended_at"] = "" if self._running_ended_at == "empty" else None
        share = (self._now - job.created) * 100 // (job.planned_end - job.created) if running else 0
        info.update(progress=f"{min(99, max(1, share))}%" if running else "", instance_id=job.instance_id,
                    instance_name=job.instance_name, fail_reason="" if running else job.fail_reason)
        return info
