"""The naive baselines the sync benchmark measures beside each step: per-record parsing, row-by-row inserts."""

import time
from datetime import datetime, timezone

import pandas as pd

from pipeline.records.schema import DDS_JOBS, frame_to_arrow
from pipeline.warehouse.store import Warehouse

API_TIME = "%Y-%m-%dT%H:%M:%S%z"
TEXT_FIELDS = ("id", "name", "instance_id", "instance_name", "status")
# Row-by-row inserts run at a few thousand rows/s: their rate is measured on this many rows, not all of them.
BASELINE_INSERT_ROWS = 5_000


def naive_normalize(records: list[dict], project_id: str, seen_at: datetime) -> pd.DataFrame:
    """The baseline: each record parsed on its own with datetime.strptime, then one frame from the list of dicts."""
    def utc(text: str | None) -> datetime | None:
        return datetime.strptime(text, API_TIME).astimezone(timezone.utc) if text else None

    rows = []
    for record in records:
        created, ended, progress = utc(record["created_at"]), utc(record.get("ended_at")), record.get("progress")
        rows.append({"project_id": project_id, **{k: record.get(k) for k in TEXT_FIELDS},
                     "progress_pct": float(progress.rstrip("%")) if progress else None,
                     "fail_reason": record.get("fail_reason") or None, "created_at": created, "ended_at": ended,
                     "duration_seconds": (ended - created).total_seconds() if ended else None,
                     "created_date": created.date(), "first_seen_at": seen_at, "last_seen_at": seen_at,
                     "region": None, "raw_record": None})
    return pd.DataFrame(rows)


def row_by_row_insert_seconds(url: str, frame: pd.DataFrame) -> float:
    """The baseline load: one SQLAlchemy INSERT per row into a fresh table, in one transaction."""
    warehouse = Warehouse(url)
    warehouse.ensure_schema()
    rows = frame_to_arrow(frame.head(BASELINE_INSERT_ROWS)).to_pylist()
    try:
        with warehouse.engine.begin() as connection:
            started = time.perf_counter()
            for row in rows:
                connection.execute(DDS_JOBS.insert(), row)
            return time.perf_counter() - started
    finally:
        warehouse.dispose()
