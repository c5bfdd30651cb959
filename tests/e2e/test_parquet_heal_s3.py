"""Healing and verifying Parquet snapshots on S3-compatible object storage (moto's server on loopback): a run heals
the broken days of its range, and `dds-tasks verify-parquet --repair` (a real subprocess) heals one outside it."""

import os
import subprocess
from datetime import timedelta

import pandas as pd
import pytest

from pipeline.snapshots.verify import OK, UNREADABLE
from pipeline.sync import snapshot_days
from pipeline.warehouse.store import Warehouse
from tests.support.job_rows import DAY
from tests.support.parquet_damage import (
    GARBAGE,
    assert_dataset_equals_warehouse,
    day_file,
    edit_rows,
    files_below,
    jobs,
    plant_job,
    truncate,
    write_bytes,
)
from tests.support.paths import BIN
from tests.support.s3 import s3_env

WEEK = [DAY + timedelta(days=i) for i in range(5)]


@pytest.fixture
def warehouse(tmp_path):
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.upsert(jobs(300, DAY, 5, seed=5))
    yield warehouse
    warehouse.dispose()


def test_a_run_heals_broken_day_objects_and_keeps_them_in_the_quarantine(s3_store, warehouse):
    snapshot_days(warehouse, s3_store, WEEK)
    cut = truncate(s3_store, WEEK[0])
    write_bytes(s3_store, day_file(s3_store, WEEK[1], "junk.parquet"), GARBAGE)
    edit_rows(s3_store, WEEK[2], plant_job)
    with pytest.raises(Exception):
        pd.read_parquet(str(s3_store.dataset_path).removeprefix("s3://"), filesystem=s3_store.filesystem)

    done = snapshot_days(warehouse, s3_store, WEEK)
    assert [bool(done[day].healed) for day in WEEK] == [True, True, True, False, False]
    assert "junk.parquet" in done[WEEK[1]].healed and "not in the warehouse" in done[WEEK[2]].healed
    assert all(str(path).startswith(f"{s3_store.root}/_quarantine/dds_jobs/") for path in done[WEEK[1]].moved_aside)
    objects = files_below(s3_store)
    in_dataset = sorted(path for path in objects if path.startswith("dds_jobs/"))
    assert in_dataset == [f"dds_jobs/created_date={day.isoformat()}/part-0.parquet" for day in WEEK]
    assert cut in [data for path, data in objects.items() if path.startswith("_quarantine/")]
    assert_dataset_equals_warehouse(s3_store, warehouse, WEEK)


def test_verify_parquet_repairs_a_day_outside_the_runs_on_s3_from_the_command_line(s3_store, warehouse, s3_endpoint,
                                                                                    tmp_path):
    snapshot_days(warehouse, s3_store, WEEK)
    truncate(s3_store, WEEK[0])
    snapshot_days(warehouse, s3_store, WEEK[3:])  # a later run of other days leaves it broken
    write_bytes(s3_store, f"{str(s3_store.dataset_path).removeprefix('s3://')}/_ignored/x.parquet", GARBAGE)  # hidden
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DDS_", "AWS_"))}, **s3_env(s3_endpoint),
           "DDS_DATA_DIR": str(tmp_path), "DDS_PARQUET_ROOT": str(s3_store.root)}

    def verify(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run([BIN / "dds-tasks", "verify-parquet", *options], env=env, capture_output=True,
                              text=True, timeout=120)

    found = verify()
    assert found.returncode == 1, found.stderr
    statuses = {line.split()[0]: line.split()[1] for line in found.stdout.splitlines()[1:] if line[:4].isdigit()}
    assert statuses == {WEEK[0].isoformat(): UNREADABLE, **{day.isoformat(): OK for day in WEEK[1:]}}
    repaired = verify("--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"moved to {s3_store.root}/_quarantine" in repaired.stdout
    assert_dataset_equals_warehouse(s3_store, warehouse, WEEK)
    assert verify().returncode == 0
