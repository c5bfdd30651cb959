"""Corrupt Parquet snapshots heal from the warehouse in real Dagster runs against the simulator: a run heals the
days of its range and says so; a damaged day outside any run is found and repaired by `dds-tasks verify-parquet`
(a real subprocess) and by the job dds_parquet_verify."""

import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey

from pipeline.snapshots.store import ParquetStore
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import (
    PipelineUnderTest,
    check_evaluations,
    env_without_secrets,
    pipeline_under_test,
    yesterday,
)
from tests.support.parquet_damage import (
    GARBAGE,
    assert_dataset_equals_warehouse,
    edit_rows,
    later_state,
    plant_job,
    truncate,
)
from tests.support.paths import BIN


def warnings_of(p, run_id: str) -> list[str]:
    return [entry.user_message for entry in p.instance.all_logs(run_id) if entry.level == logging.WARNING]


def verify_cli(data_dir: Path, *options: str) -> subprocess.CompletedProcess:
    """`dds-tasks verify-parquet` as a user runs it, configured by the environment only."""
    return subprocess.run([BIN / "dds-tasks", "verify-parquet", *options], capture_output=True, text=True,
                          env={**env_without_secrets(), "DDS_DATA_DIR": str(data_dir)}, timeout=120)


@contextmanager
def synced(tmp_path: Path, monkeypatch, days: list[date]) -> Iterator[tuple[PipelineUnderTest, ParquetStore]]:
    """A pipeline whose days have been synced in one run, and its Parquet snapshots."""
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        assert p.sync(days[0], days[-1]).success
        yield p, ParquetStore(p.settings.parquet_root)


def test_a_run_heals_the_broken_days_of_its_range_and_reports_them(tmp_path, monkeypatch):
    days = [yesterday() - timedelta(days=n) for n in (4, 3, 2, 1)]
    with synced(tmp_path, monkeypatch, days) as (p, store):
        cut = truncate(store, days[0])
        (store.day_path(days[1]) / "junk.parquet").write_bytes(GARBAGE)
        edit_rows(store, days[2], plant_job)
        edit_rows(store, days[3], later_state)
        with pytest.raises(Exception):
            pd.read_parquet(store.dataset_path)

        result = p.sync(days[0], days[-1])  # the same run failed on the truncated file before
        assert result.success
        reasons = {day: p.day_metadata("dds_jobs_parquet", day) for day in days}
        assert all(meta["healed"] is True for meta in reasons.values())
        assert reasons[days[0]]["healed_reason"].startswith("unreadable file part-0.parquet (Parquet magic bytes")
        assert reasons[days[1]]["healed_reason"].startswith("unreadable file junk.parquet")
        assert reasons[days[2]]["healed_reason"] == "its files disagreed with the warehouse: 1 job not in the warehouse"
        assert "1 job differing in status, last_seen_at" in reasons[days[3]]["healed_reason"]
        # The previous files are kept, named in the metadata: the truncated bytes, and the planted job.
        kept = reasons[days[0]]["moved_aside"]
        assert len(kept) == 1 and Path(kept[0]).read_bytes() == cut
        assert "planted-by-hand" in pq.read_table(reasons[days[2]]["moved_aside"][0]).column("id").to_pylist()
        logged = warnings_of(p, result.run_id)
        for day, name in ((days[0], "part-0.parquet"), (days[1], "junk.parquet")):
            assert any(f"Parquet day {day.isoformat()} healed: unreadable file {name}" in line for line in logged)
        assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["parquet_matches_warehouse"]
        warehouse = Warehouse(p.settings.warehouse_url)
        assert_dataset_equals_warehouse(store, warehouse, days)

        again = p.sync(days[0], days[-1])  # healthy days are written, not healed
        assert again.success and not any("healed" in line for line in warnings_of(p, again.run_id))
        assert p.day_metadata("dds_jobs_parquet", days[0])["healed"] is False
        warehouse.dispose()


def test_a_broken_day_outside_the_runs_is_found_and_repaired_from_the_command_line(tmp_path, monkeypatch):
    days = [yesterday() - timedelta(days=n) for n in (4, 3, 2, 1)]
    with synced(tmp_path, monkeypatch, days) as (p, store):
        cut = truncate(store, days[0])
        assert p.sync(days[2], days[-1]).success  # a later run does not look at the broken day
        assert store.day_path(days[0]).joinpath("part-0.parquet").read_bytes() == cut
        with pytest.raises(Exception):
            pd.read_parquet(store.dataset_path)
        checked = check_evaluations(p, days[0])["parquet_matches_warehouse"]  # fails, naming the file, not crashes
        assert checked.passed is False
        assert checked.metadata["unreadable_files"].value == [str(store.day_path(days[0]) / "part-0.parquet")]

        found = verify_cli(tmp_path / "data")
        assert found.returncode == 1, found.stderr
        line = next(row for row in found.stdout.splitlines() if row.startswith(days[0].isoformat()))
        assert "unreadable" in line and "part-0.parquet (Parquet magic bytes not found in footer)" in line
        assert "4 day(s) verified" in found.stdout and "3 ok, 1 unreadable, 0 differ; 1 problem(s) remain" in found.stdout

        repaired = verify_cli(tmp_path / "data", "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "rewritten from the warehouse" in repaired.stdout and "1 repaired" in repaired.stdout
        warehouse = Warehouse(p.settings.warehouse_url)
        assert_dataset_equals_warehouse(store, warehouse, days)
        warehouse.dispose()
        assert verify_cli(tmp_path / "data").returncode == 0

        wrong = verify_cli(tmp_path / "data", "--repiar")
        assert wrong.returncode == 2 and wrong.stdout == ""
        assert wrong.stderr.splitlines() == ["dds-tasks: error: unrecognized arguments: --repiar (see --help)"]
        missing = verify_cli(tmp_path / "elsewhere")
        assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
        assert "the SQLite warehouse" in missing.stderr and "does not exist" in missing.stderr
        assert not (tmp_path / "elsewhere").exists()


def test_the_verify_job_reports_on_the_asset_and_repairs_when_asked(tmp_path, monkeypatch):
    days = [yesterday() - timedelta(days=n) for n in (3, 2, 1)]
    with synced(tmp_path, monkeypatch, days) as (p, store):
        (store.day_path(days[1]) / "junk.parquet").write_bytes(GARBAGE)
        job = p.definitions().resolve_job_def("dds_parquet_verify")

        found = job.execute_in_process(instance=p.instance, run_config={"repair": False}, raise_on_error=False)
        assert not found.success
        report = _last_observation(p)
        assert report["days"] == 3 and report["days_unreadable"] == 1 and report["days_still_bad"] == 1
        assert f"| {days[1].isoformat()} | unreadable |" in report["verified"] and "junk.parquet" in report["verified"]
        assert store.day_path(days[1]).joinpath("junk.parquet").exists()

        fixed = job.execute_in_process(instance=p.instance, run_config={"repair": True})
        assert fixed.success
        report = _last_observation(p)
        assert report["days_repaired"] == 1 and report["days_still_bad"] == 0 and report["repair"] is True
        assert report["moved_aside"] and not store.day_path(days[1]).joinpath("junk.parquet").exists()
        assert pd.read_parquet(store.dataset_path)["id"].is_unique


def _last_observation(p) -> dict[str, object]:
    records = p.instance.fetch_observations(AssetKey("dds_jobs_parquet"), limit=1).records
    return {key: value.value for key, value in records[0].asset_observation.metadata.items()}
