"""The jobs the storage tests write: the day they were created on, the instants they were seen at, and their rows
as the sync normalizes them (records made with ``tests.support.records.api_record`` and ``synthetic_records``)."""

from datetime import date, datetime, timedelta, timezone

import pandas as pd

from pipeline.records.normalize import normalize_jobs
from tests.support.records import synthetic_records

DAY = date(2026, 11, 1)
CREATED = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)
# Two sightings a day apart: the first sync and a later one.
MONDAY = datetime(2026, 11, 2, 0, 15, tzinfo=timezone.utc)
TUESDAY = MONDAY + timedelta(days=1)


def rows(records: list[dict], seen_at: datetime = MONDAY, project_id: str = "proj-1") -> pd.DataFrame:
    """``records`` normalized as one sync seen at ``seen_at`` (every record accepted)."""
    result = normalize_jobs(records, project_id, seen_at, region="ap-southeast-1")
    assert not result.rejected
    return result.frame


def by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["project_id", "id"], ignore_index=True)


def month(count: int = 300) -> list[dict]:
    """``count`` records created over the five days from DAY."""
    return synthetic_records(count, DAY, days=5, seed=7)
