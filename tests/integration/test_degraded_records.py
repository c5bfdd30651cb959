"""A bad record never erases: a re-sync whose records lack fields or send them unreadable keeps every stored value
(finished jobs included), counts each such field, and a finished job changes its finished state only on a complete
record, counted and logged. Over HTTP against the simulator, on real SQLite, PostgreSQL and MariaDB; through
Dagster: tests/e2e/test_assets.py."""

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from pipeline.api.auth import TokenAuth
from pipeline.api.client import DdsTaskCenterClient
from pipeline.records.normalize import normalize_jobs
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.sync import sync_days
from tests.support.records import api_record
from pipeline.warehouse.store import Warehouse
from tests.support.job_rows import CREATED, MONDAY, TUESDAY
from tests.support.warehouse_helpers import stored

NOW = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
DAYS = [date(2026, 11, 14) + timedelta(days=i) for i in range(5)]
STORED_VALUES = ("name", "instance_id", "instance_name", "status", "progress_pct", "fail_reason", "ended_at",
                 "duration_seconds")


def lacking_field(degradation: str) -> str:
    """The API field a simulator degradation (missing_name, ..., ended_at_not_a_time) does not give."""
    return "ended_at" if degradation == "ended_at_not_a_time" else degradation.removeprefix("missing_")


def erased_values(before: pd.DataFrame, after: pd.DataFrame) -> int:
    """Stored values (non-NULL) of ``before`` that are NULL in ``after`` (same jobs, sorted by key)."""
    return int(sum((before[name].notna() & after[name].isna()).sum() for name in STORED_VALUES))


def sync(sim: DdsSimulator, store: Warehouse, at: datetime):
    with DdsTaskCenterClient(sim.url, sim.project_id, TokenAuth("t")) as client:
        return sync_days(client, store, DAYS, now=at)


def test_a_resync_of_2000_jobs_with_degraded_records_erases_no_stored_value(warehouse):
    with DdsSimulator(SimulatorConfig(seed=13, jobs_per_day=400, history_days=10, token="t", now=NOW)) as sim:
        sync(sim, warehouse, NOW)
        before = stored(warehouse, DAYS)
        # Every record now lacks one field (name, instance_id, instance_name, fail_reason or status) or sends
        # ended_at "not-a-time", the same way on every page.
        sim.answers.degrade(1.0, seed=3)
        again = sync(sim, warehouse, NOW + timedelta(hours=1))
        lacks = pd.Series([lacking_field(sim.answers.degradation_of(job_id)) for job_id in before["id"]])
    after = stored(warehouse, DAYS)
    assert len(before) >= 2000 and before["status"].isin(["Completed", "Failed"]).mean() > 0.9
    assert erased_values(before, after) == 0
    kept = [name for name in before.columns if name not in ("last_seen_at", "raw_record")]
    pd.testing.assert_frame_equal(after[kept], before[kept])  # every stored value kept, finished jobs included
    assert (after["last_seen_at"] == pd.Timestamp(NOW + timedelta(hours=1))).all()
    # The record of the latest state is kept as sent; one without a status is not the latest state of a finished job.
    assert after["raw_record"].notna().tolist() == (lacks != "status").tolist()
    lacking = lacks.value_counts().to_dict()
    assert again.unknown_fields == lacking and again.finished_changed == 0
    assert again.metadata()["unknown_status"] == lacking["status"]
    assert sum(day.metadata()["unknown_fields"] for day in again.days.values()) == len(after)
    assert any("status is missing or null; the stored value is kept" in line for line in again.problems)


def load(store: Warehouse, records: list[dict], seen: datetime):
    normalized = normalize_jobs(records, "proj-1", seen, region="ap-southeast-1")
    return store.upsert(normalized.frame, normalized.unknown)


def test_a_finished_state_changes_only_on_a_complete_record_and_is_counted(warehouse):
    ended = CREATED + timedelta(minutes=5)
    load(warehouse, [api_record("done", CREATED, status="Completed", ended_at=ended),
                     api_record("busy", CREATED, status="Running", progress="40%")], MONDAY)
    failed = api_record("done", CREATED, status="Failed", fail_reason="disk full", ended_at=ended + timedelta(hours=1))
    without_instance = {key: value for key, value in failed.items() if key != "instance_name"}
    finished_busy = {**api_record("busy", CREATED, status="Completed", instance_name="renamed"), "ended_at": "x"}
    counts = load(warehouse, [without_instance, finished_busy], TUESDAY)
    table = stored(warehouse).set_index("id")
    # A record lacking a field: the finished job keeps its finished state; the running one finishes, keeping
    # the end it did not give (NULL) and taking the name it did.
    assert counts.finished_changed == 0
    assert table.loc["done", ["status", "ended_at", "fail_reason"]].tolist() == ["Completed", pd.Timestamp(ended), None]
    assert table.loc["done", "instance_name"] == "dds-6be2"  # kept, not erased
    assert (table.loc["busy", "status"], table.loc["busy", "instance_name"]) == ("Completed", "renamed")
    assert pd.isna(table.loc["busy", "ended_at"]) and pd.isna(table.loc["busy", "progress_pct"])

    counts = load(warehouse, [failed], TUESDAY + timedelta(days=1))
    row = stored(warehouse).set_index("id").loc["done"]
    assert (row["status"], row["fail_reason"], row["ended_at"]) == ("Failed", "disk full", failed_end(failed))
    assert counts.finished_changed == 1
    assert counts.finished_sample.startswith("job 'done' (project 'proj-1'): status 'Completed' -> 'Failed'")
    assert "fail_reason NULL -> 'disk full'" in counts.finished_sample


def failed_end(record: dict) -> pd.Timestamp:
    return pd.Timestamp(datetime.strptime(record["ended_at"], "%Y-%m-%dT%H:%M:%S%z")).tz_convert("UTC")


def test_a_bad_unknown_mask_is_refused_before_anything_is_written(warehouse):
    frame = normalize_jobs([api_record("a", CREATED)], "proj-1", MONDAY).frame
    with pytest.raises(ValueError, match="one integer mask per row"):
        warehouse.upsert(frame, np.zeros(2, dtype=np.uint16))
    assert warehouse.count_by_day([CREATED.date()]) == {CREATED.date(): 0}
