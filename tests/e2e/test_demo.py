"""``dds-tasks demo`` as a newcomer runs it: in a folder of its own, whatever the configured storage, safe to run
again, and honest about its checks."""

import hashlib
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from pipeline.records.normalize import normalize_jobs
from pipeline.simulator import dataset
from pipeline.snapshots.store import ParquetStore
from pipeline.sync import snapshot_days
from tests.support.records import synthetic_records
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import env_without_secrets, yesterday
from tests.support.paths import BIN
from tests.support.reliability_helpers import stored_jobs


def demo(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dds-tasks"), "demo", *args], cwd=cwd, env=env or env_without_secrets(),
                          capture_output=True, text=True, timeout=300)


def file_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def production_like(tmp_path: Path, warehouse_url: str) -> dict[str, str]:
    """A deployment's configuration over stored data: a warehouse holding the demo's own project id (so that a
    demo writing there could not go unseen), Parquet snapshots, a targets file and credentials."""
    days = [yesterday() - timedelta(days=n) for n in range(3, -1, -1)]
    frame = normalize_jobs(synthetic_records(300, days[0], days=len(days), seed=3), dataset.PROJECT_ID,
                           seen_at=datetime.now(timezone.utc), region="prod-region").frame
    warehouse = Warehouse(warehouse_url)
    try:
        warehouse.ensure_schema()
        warehouse.upsert(frame)
        snapshot_days(warehouse, ParquetStore(str(tmp_path / "prod" / "parquet")), days)
    finally:
        warehouse.dispose()
    targets = tmp_path / "prod" / "targets.yaml"
    targets.write_text("targets:\n  - {name: sg, region: ap-southeast-1, project_id: prod-project}\n")
    return {**env_without_secrets(), "DDS_WAREHOUSE_URL": warehouse_url, "DDS_DATA_DIR": str(tmp_path / "prod" / "data"),
            "DDS_PARQUET_ROOT": str(tmp_path / "prod" / "parquet"), "DDS_TARGETS_FILE": str(targets),
            "DDS_START_DATE": "not-a-date", "HUAWEICLOUD_SDK_AK": "PRODKEY", "DDS_AUTH_TOKEN": "prod-token"}


@pytest.mark.slow
def test_the_demo_leaves_the_configured_storage_untouched_and_keeps_to_its_folder(tmp_path, warehouse_url):
    env = production_like(tmp_path, warehouse_url)
    before_rows, before_files = stored_jobs(warehouse_url), file_digests(tmp_path / "prod")
    work = tmp_path / "clone"
    work.mkdir()
    done = demo(work, "--days", "2", "--jobs-per-day", "30", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "asset checks: 6 of 6 passed." in done.stdout
    # Nothing of the deployment's storage changed: not a row, not a byte of a file, no new file.
    pd.testing.assert_frame_equal(stored_jobs(warehouse_url), before_rows)
    assert file_digests(tmp_path / "prod") == before_files
    assert sorted(p.name for p in work.iterdir()) == ["demo"]
    demo_rows = stored_jobs(f"sqlite:///{work / 'demo' / 'data' / 'warehouse.db'}")
    assert len(demo_rows) > 0 and set(demo_rows["region"]) == {"ap-southeast-1"}
    snapshot = pd.read_parquet(work / "demo" / "data" / "parquet" / "dds_jobs")
    assert len(snapshot) == len(demo_rows) and set(snapshot["region"]) == {"ap-southeast-1"}
    assert (work / "demo" / "dagster_home" / "dagster.yaml").is_file()


@pytest.mark.slow
def test_the_demo_runs_again_safely_into_the_same_dagster_home(tmp_path):
    first = demo(tmp_path, "--days", "3", "--jobs-per-day", "40")
    assert first.returncode == 0, first.stderr[-3000:]
    url = f"sqlite:///{tmp_path / 'demo' / 'data' / 'warehouse.db'}"
    rows = stored_jobs(url)
    second = demo(tmp_path, "--days", "3", "--jobs-per-day", "40")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "emptied" not in second.stdout
    pd.testing.assert_frame_equal(stored_jobs(url).drop(columns="last_seen_at"), rows.drop(columns="last_seen_at"))
    # Both runs are in the demo's own Dagster home, where `dds-tasks demo --ui` shows them.
    runs = sqlite3.connect(tmp_path / "demo" / "dagster_home" / "history" / "runs.db")
    assert runs.execute("SELECT COUNT(*) FROM runs WHERE status = 'SUCCESS'").fetchone()[0] == 2
    runs.close()
    # Another volume is another dataset: the folder starts afresh rather than mixing the two.
    other = demo(tmp_path, "--days", "3", "--jobs-per-day", "20")
    assert other.returncode == 0 and "emptied it" in other.stdout, other.stderr[-3000:]
    assert "asset checks: 6 of 6 passed." in other.stdout and len(stored_jobs(url)) < len(rows)


@pytest.mark.slow
def test_the_demo_names_each_failing_check_and_fails_on_an_error_severity_one(tmp_path):
    assert demo(tmp_path, "--days", "2", "--jobs-per-day", "30").returncode == 0
    # A stored job that ended before it started, on a day the demo syncs again: the API never sent it.
    db = sqlite3.connect(tmp_path / "demo" / "data" / "warehouse.db")
    with db:
        db.execute("INSERT INTO dds_jobs (project_id, id, name, instance_id, instance_name, status, created_at, "
                   "ended_at, created_date, first_seen_at, last_seen_at, region) SELECT project_id, 'planted-job', "
                   "name, instance_id, instance_name, 'Completed', created_at, '2001-01-01 00:00:00', created_date, "
                   "first_seen_at, last_seen_at, region FROM dds_jobs WHERE created_date = ? LIMIT 1",
                   (yesterday().isoformat(),))
    db.close()
    done = demo(tmp_path, "--days", "2", "--jobs-per-day", "30")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "asset checks: 4 of 6 passed:" in done.stdout
    error_line = next(line for line in done.stdout.splitlines() if "FAILED ended_not_before_created" in line)
    assert "(ERROR)" in error_line and "jobs_ending_before_creation=1" in error_line and "planted-job" in error_line
    warn_line = next(line for line in done.stdout.splitlines() if "FAILED stored_count_matches_api" in line)
    assert "(WARN)" in warn_line and f"{yesterday().isoformat()}: " in warn_line and "from API" in warn_line


def test_demo_options_and_the_users_own_settings(tmp_path):
    bad = demo(tmp_path, "--days", "0")
    assert (bad.returncode, bad.stderr) == (2, "dds-tasks: configuration error: --days and --jobs-per-day must be "
                                                "at least 1\n")
    assert not (tmp_path / "demo").exists()
    # The user's own settings are another matter: the demo sets them aside, a bad one included (above, the
    # production-like run has DDS_START_DATE='not-a-date'); the commands that read them still refuse it.
    env = {**env_without_secrets(), "DDS_START_DATE": "yesterday", "DDS_DATA_DIR": str(tmp_path / "data")}
    targets = subprocess.run([str(BIN / "dds-tasks"), "targets"], env=env, capture_output=True, text=True, timeout=60)
    assert (targets.returncode, targets.stderr) == (
        2, "dds-tasks: configuration error: DDS_START_DATE='yesterday' is not a date in the form YYYY-MM-DD\n")


def test_the_simulator_serves_the_demos_jobs_by_default():
    from pipeline.cli.main import _parser
    from pipeline.cli.simulate import config_from_args

    demo_defaults = _parser().parse_args(["demo"])
    served = config_from_args(_parser().parse_args(["simulate"]))
    assert (served.seed, served.jobs_per_day, served.project_ids, served.history_days) == (
        dataset.SEED, demo_defaults.jobs_per_day, (dataset.PROJECT_ID,), dataset.HISTORY_DAYS)
