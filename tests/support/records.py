"""Helpers for the tests and benchmarks, never used by the pipeline: synthetic DDS job records in the API's own form
(every field a string), and a client's whole answer for a window as one list."""

import random
import uuid
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from pipeline.api.client import DdsTaskCenterClient, FetchStats
from pipeline.api.pagination import Page, job_key
from pipeline.api.windows import TimeWindow
from pipeline.records.precedence import incoming_wins
from pipeline.records.schema import TERMINAL_STATUSES

BEIJING = timezone(timedelta(hours=8))
TASK_NAMES = (
    "RestartInstance",
    "ResizeMongoDBInstance",
    "EnlargeMongoDBVolume",
    "MongodbSnapshotBackup",
    "MongodbSnapshotEBackup",
    "ModifySecurityGroup",
    "SwitchPrimary",
    "CreateMongoDB",
)
FAIL_REASONS = ("Insufficient resources in the AZ.", "Backup agent timed out.", "实例状态异常，请稍后重试。")


def record_replaces(kept: Mapping, incoming: Mapping) -> bool:
    """Whether ``incoming``, an API record of a job read in the same fetch as ``kept`` (both as sent), is the
    latest state of the two: the latest-state rule (pipeline/records/precedence.py) with equal sightings."""
    return bool(incoming_wins(_record_is_terminal(kept), _record_is_terminal(incoming), 0, 0))


def _record_is_terminal(record: object) -> bool:
    status = record.get("status") if isinstance(record, Mapping) else None
    return isinstance(status, str) and status in TERMINAL_STATUSES


def api_time(moment: datetime, zone: timezone = BEIJING) -> str:
    """``moment`` as the API writes it, e.g. ``2022-09-05T14:24:14+0800``."""
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S%z")


def api_record(
    job_id: str,
    created_at: datetime,
    *,
    status: str = "Completed",
    name: str = "RestartInstance",
    ended_at: datetime | None = None,
    progress: str = "",
    fail_reason: str = "",
    instance_id: str = "1f311e6a299345d7bbc878874844e233in02",
    instance_name: str = "dds-6be2",
) -> dict[str, str]:
    """One JobInfo object; a finished job without ``ended_at`` is given one 90 seconds after creation."""
    if ended_at is None and status != "Running":
        ended_at = created_at + timedelta(seconds=90)
    return {
        "id": job_id,
        "name": name,
        "instance_id": instance_id,
        "instance_name": instance_name,
        "status": status,
        "progress": progress,
        "fail_reason": fail_reason,
        "created_at": api_time(created_at),
        "ended_at": api_time(ended_at) if ended_at else "",
    }


def synthetic_records(count: int, first_day: date, days: int = 30, seed: int = 0) -> list[dict[str, str]]:
    """``count`` distinct jobs created over ``days`` UTC days from ``first_day``, on 500 instances: mostly
    Completed, some Failed, a few still Running."""
    rng = random.Random(seed)
    start = datetime.combine(first_day, time.min, tzinfo=timezone.utc)
    records = []
    for _ in range(count):
        created = start + timedelta(seconds=rng.randrange(days * 86400))
        status = rng.choices(("Completed", "Failed", "Running"), weights=(85, 10, 5))[0]
        instance = rng.randrange(500)
        records.append(
            api_record(
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                created,
                status=status,
                name=rng.choice(TASK_NAMES),
                ended_at=None if status == "Running" else created + timedelta(seconds=rng.randrange(5, 7200)),
                progress=f"{rng.randrange(100)}%" if status == "Running" else "",
                fail_reason=rng.choice(FAIL_REASONS) if status == "Failed" else "",
                instance_id=f"{instance:032x}in02",
                instance_name=f"dds-{instance:04d}",
            )
        )
    return records


@dataclass(frozen=True)
class FetchResult:
    """The distinct jobs (dicts as sent, one per ``id``) the API returned for a window, and what it took."""

    jobs: list[dict]
    stats: FetchStats


def fetch_jobs(
    client: DdsTaskCenterClient,
    window: TimeWindow,
    *,
    status: str | None = None,
    name: str | None = None,
    job_id: str | None = None,
    on_page: Callable[[Page, FetchStats], None] | None = None,
) -> FetchResult:
    """Every job ``client`` gets from the API for ``window``, one per id (of two copies, the latest state by the
    latest-state rule); ``on_page`` hears of each page. The pipeline itself streams pages (``sync.py``): this whole
    list is for tests and benchmarks."""
    stats = FetchStats()
    jobs_by_id: dict[str, dict] = {}
    with closing(client.iter_pages(window, status=status, name=name, job_id=job_id, stats=stats)) as pages:
        for page in pages:
            for job in page.jobs:
                kept = jobs_by_id.get(key := job_key(job))
                if kept is None or record_replaces(kept, job):
                    jobs_by_id[key] = job
            stats.jobs = len(jobs_by_id)
            if on_page is not None:
                on_page(page, stats)
    return FetchResult(list(jobs_by_id.values()), stats)
