"""``dds-tasks report`` as a user runs it: a process reading the configured warehouse, writing one HTML file, and
refusing a bad option in one line with exit status 2 before it reads or writes anything."""

import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.dagster_helpers import env_without_secrets
from tests.support.paths import BIN
from tests.support.report_helpers import SYNCED, ReportPage, known_jobs, load, write_ledger


def dds_tasks(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dds-tasks"), "report", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def sqlite_data_dir(tmp_path) -> Path:
    """DDS_DATA_DIR holding a SQLite warehouse of known jobs (November 2026)."""
    load(f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}", known_jobs()).dispose()
    return tmp_path / "data"


def env_for(data_dir: Path, **variables: str) -> dict[str, str]:
    return {**env_without_secrets(), "DDS_DATA_DIR": str(data_dir), **variables}


@pytest.fixture
def data_dir(tmp_path, warehouse_url) -> Path:
    """DDS_DATA_DIR, and DDS_WAREHOUSE_URL holding known jobs (November 2026): a SQLite file, a PostgreSQL database."""
    load(warehouse_url, known_jobs()).dispose()
    return tmp_path / "data"


def test_a_period_and_a_project_give_their_report_at_the_default_path(data_dir, warehouse_url):
    done = dds_tasks("--since", "2026-11-01", "--until", "2026-11-30", "--project", "p2",
                     env=env_for(data_dir, DDS_WAREHOUSE_URL=warehouse_url))
    assert done.returncode == 0, done.stderr
    path = data_dir / "reports" / "dds-jobs-report-2026-11-30-p2.html"
    assert done.stdout.startswith(f"report written: {path} (")
    page = ReportPage(path.read_text(encoding="utf-8"))
    headline = dict(page.body("headline"))
    p2 = known_jobs().query("project_id == 'p2'")
    in_period = p2[p2["created_date"].astype(object).between(date(2026, 11, 1), date(2026, 11, 30))]
    assert headline["jobs"] == f"{len(in_period):,}" and headline["projects"] == "project p2"
    assert f"  jobs: {len(in_period):,}" in done.stdout


def test_by_default_the_days_synced_up_to_yesterday_and_out_names_the_file_or_its_folder(tmp_path):
    # A fresh install that has synced five days, the last two days ago: the report covers those days and the days
    # since (yesterday, missing), not weeks of blank days before them.
    data_dir = tmp_path / "data"
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    warehouse = load(f"sqlite:///{data_dir / 'warehouse.db'}", known_jobs().head(0))
    write_ledger(warehouse, {("p1", yesterday - timedelta(days=n)): SYNCED for n in range(1, 6)})
    warehouse.dispose()
    done = dds_tasks("--out", str(tmp_path), env=env_for(data_dir, DDS_PROJECT_ID="p1"))
    assert done.returncode == 0, done.stderr
    page = ReportPage((tmp_path / f"dds-jobs-report-{yesterday}.html").read_text(encoding="utf-8"))
    first = yesterday - timedelta(days=5)
    assert dict(page.body("headline"))["period"] == f"{first} to {yesterday} (6 UTC days)"
    assert dict(page.body("coverage-table"))["synced"] == "5" and page.body("not-synced-table") == [
        [yesterday.isoformat(), "missing"]]
    named = tmp_path / "sub" / "my report.html"
    assert dds_tasks("--days", "7", "--out", str(named), env=env_for(data_dir)).returncode == 0
    assert dict(ReportPage(named.read_text(encoding="utf-8")).body("headline"))["period"].endswith("(7 UTC days)")


@pytest.mark.parametrize(("args", "message"), [
    (["--days", "0"], "argument --days: 0 is outside 1..366"),
    (["--days", "many"], "argument --days: 'many' is not a whole number of days"),
    (["--since", "2026-02-30"], "argument --since: '2026-02-30' is not a date in the form YYYY-MM-DD"),
    (["--since", "2026-11-01", "--days", "3"], "--since and --days both set the period's start: give one of them"),
    (["--since", "2026-11-20", "--until", "2026-11-10"], "--since 2026-11-20 is after the period's last day"),
    (["--since", "2020-01-01", "--until", "2026-11-10"], "a report covers at most 366"),
    (["--until", "2999-01-01"], "--until 2999-01-01 is after today"),
    (["--project", "p1", "--target", "sg"], "argument --target: not allowed with argument --project"),
    (["--colour"], "unrecognized arguments: --colour"),
    (["--target", "sg-prod"], "configuration error: --target 'sg-prod' is not a target of DDS_TARGETS_FILE"),
    (["--out", "s3://No_Such_Bucket/r.html"], "configuration error: --out='s3://No_Such_Bucket/r.html' does not name"),
])
def test_a_bad_option_is_one_line_and_exit_2_before_anything_is_written(sqlite_data_dir, args, message):
    data_dir = sqlite_data_dir
    done = dds_tasks(*args, env=env_for(data_dir))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stdout == "" and not (data_dir / "reports").exists()


def test_a_warehouse_that_does_not_exist_is_one_line_and_is_not_created(tmp_path):
    done = dds_tasks(env=env_for(tmp_path / "nothing-here"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "no warehouse at" in done.stderr and "nothing is synced yet" in done.stderr
    assert not (tmp_path / "nothing-here" / "warehouse.db").exists()
