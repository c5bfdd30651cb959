"""The report's HTML page: it shows every figure in its tables (checked against pandas over the rows inserted,
on SQLite, PostgreSQL and MariaDB), references nothing outside itself, its charts decode as SVG, and it says so
when a period is empty or without failures. Rendered by headless Chromium: tests/e2e/test_report_in_browser.py."""

import re
import subprocess
import sys
from datetime import date

import pytest

import pandas as pd

from pipeline.report.period import ReportPeriod
from tests.support.dagster_helpers import env_without_secrets
from tests.support.paths import ROOT
from tests.support.report_helpers import (
    NOW,
    Expected,
    ReportPage,
    decoded_chart,
    known_jobs,
    report_html,
)


def count(value: float) -> str:
    return f"{int(value):,}"


def age(delta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


def test_the_tables_show_every_figure(warehouse_url, tmp_path):
    jobs = known_jobs()
    html = report_html(warehouse_url, tmp_path, jobs)
    page = ReportPage(html)
    expected = Expected(jobs)

    headline = dict(page.body("headline"))
    freshness, instances = expected.backup_freshness()
    without, overdue = (freshness["freshness"] == 0).sum(), (freshness["freshness"] == 1).sum()
    assert headline["instances backed up"] == (f"{instances - without - overdue} of {instances} within 24 h; "
                                               f"{without} without a backup in the period, {overdue} not within 24 h")
    marks = {0: "\u2717 none in the period", 1: "! none within 24 h", 2: "\u2713 within 24 h"}
    assert page.body("backup-freshness-table") == [
        [marks[r.freshness], r.project_id, r.instance_name, r.instance_id,
         "none" if pd.isna(r.last_backup_at) else r.last_backup_at.strftime("%Y-%m-%d %H:%M"),
         "-" if pd.isna(r.last_backup_at) else age(NOW - r.last_backup_at), count(r.backups), count(r.failed)]
        for r in freshness.itertuples()]
    assert page.body("failure-trend-table") == [
        [r.day.isoformat(), count(r.jobs), count(r.failed), f"{100 * r.failed / r.jobs:.1f}%", count(r.backups),
         count(r.failed_backups), f"{100 * r.failed_backups / r.backups:.1f}%" if r.backups else "-"]
        for r in expected.failures_by_day().itertuples()]
    failed = (expected.in_period["status"] == "Failed").sum()
    assert headline["jobs"] == count(len(expected.in_period))
    assert headline["failed jobs"] == f"{count(failed)} ({100 * failed / len(expected.in_period):.1f}% of jobs)"
    assert headline["Running now"] == count(expected.running()[1])
    assert headline["backups"] == f"{count(len(expected.backups()))}, {count(expected.failed_backups()[1])} failed"
    # The ledger: 11-12 failed; 11-01..11-30 counted, 11-30 (NOW's day) in progress.
    assert headline["days"] == "28 synced, 1 failed, 1 in progress"

    by_day = expected.jobs_by_day().pivot_table(index="day", columns="status", values="jobs", fill_value=0)
    header, *rows = page.tables["jobs-per-day-table"]
    assert header == ["UTC day", "Completed", "Failed", "Running", "all"]
    assert rows == [[day.isoformat(), *(count(by_day.at[day, s]) for s in header[1:4]), count(by_day.loc[day].sum())]
                    for day in by_day.index]

    names, total = expected.failures_by_name()
    assert page.body("failure-rate-table") == [
        [r.name, count(r.jobs), count(r.failed), f"{100 * r.failed / r.jobs:.1f}%",
         f"{100 * r.failed_first_half / r.jobs_first_half:.1f}%",
         f"{100 * (r.failed - r.failed_first_half) / (r.jobs - r.jobs_first_half):.1f}%"] for r in names.itertuples()]
    durations, _ = expected.durations_by_name()
    assert page.body("durations-table") == [
        [r.name, count(r.completed_jobs), f"{r.p50_seconds / 60:,.1f}", f"{r.p90_seconds / 60:,.1f}"]
        for r in durations.itertuples()]
    instances, _ = expected.backups_by_instance()
    assert page.body("backups-table") == [
        [r.project_id, r.instance_name, r.instance_id, count(r.backups), count(r.completed), count(r.failed)]
        for r in instances.itertuples()]
    failed_backups, _ = expected.failed_backups()
    assert page.body("failed-backups-table") == [
        [r.instance_name, r.created_at.strftime("%Y-%m-%d %H:%M"), r.name, r.fail_reason]
        for r in failed_backups.itertuples()]
    running, running_total = expected.running()
    assert [row[:3] for row in page.body("running-table")] == [
        [r.name, r.instance_name, r.created_at.strftime("%Y-%m-%d %H:%M")] for r in running.itertuples()]
    assert f"and {running_total - 20} more Running jobs ({running_total} in all)" in html
    assert page.body("running-age-table") == [[label, count(n)] for label, n in expected.running_by_age().items()]
    # Today (NOW's day) is in progress, said beside the table, never listed as not synced.
    assert page.body("not-synced-table") == [["2026-11-12", "failed"]]
    assert "2026-11-30 (today, UTC) is in progress" in html


def test_the_page_references_nothing_outside_itself_and_every_chart_decodes(sqlite_url, tmp_path):
    html = report_html(sqlite_url, tmp_path)
    page = ReportPage(html)
    assert not page.tags & {"script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video"}
    assert all(reference.startswith("data:") for reference in page.references), page.references
    assert not re.search(r"https?://|@import|url\(", html, re.I)
    # failures per day, jobs per day, failure rate, durations, backups, Running ages, coverage
    assert len(page.images) == 7
    for source in page.images:
        svg = decoded_chart(source)
        assert float(svg.get("width").removesuffix("pt")) > 0 and svg.find("{*}g") is not None
        for element in svg.iter():
            for name, value in element.attrib.items():
                if name.endswith("href"):
                    assert value.startswith("#"), value  # matplotlib reuses its own glyphs and clip paths only
                assert "url(" not in value or value.startswith("url(#"), value


def test_an_empty_period_gives_a_valid_report_that_says_so(warehouse_url, tmp_path):
    html = report_html(warehouse_url, tmp_path, period=ReportPeriod(date(2025, 1, 1), date(2025, 1, 31)), ledger=False)
    page = ReportPage(html)
    assert "no-jobs" in page.ids
    assert dict(page.body("headline"))["jobs"] == "0"
    for message in ("No jobs were created in this period.", "No jobs, so no failures, in this period.",
                    "No completed job with a duration in this period.", "No backup was created in this period.",
                    "No day of this period is counted: it lies before DDS_START_DATE"):
        assert message in html
    assert page.images == []


def test_a_period_without_failures_says_so(warehouse_url, tmp_path):
    page_html = report_html(warehouse_url, tmp_path, jobs=known_jobs(failures=False))
    page = ReportPage(page_html)
    assert "No job failed in this period." in page_html and "no-failed-backups" in page.ids
    assert "failure-rate-table" not in page.tables and "failed-backups-table" not in page.tables
    assert dict(page.body("headline"))["failed jobs"] == "0 (0.0% of jobs)"
    assert len(page.images) == 6  # every chart but the failure rate's
    for source in page.images:
        decoded_chart(source)


def test_the_rate_by_half_of_the_period_shows_a_value_or_is_not_shown(sqlite_url, tmp_path):
    # 91 days from 09-01: the first half (up to 10-15) holds no job, so there is no rate to show for it.
    long = ReportPeriod(date(2026, 9, 1), date(2026, 11, 30))
    header = ReportPage(report_html(sqlite_url, tmp_path / "long", period=long)).tables["failure-rate-table"][0]
    assert header == ["task name", "jobs", "failed", "failed %"]
    november = ReportPage(report_html(sqlite_url.replace(".db", "-nov.db"), tmp_path / "nov"))
    assert november.tables["failure-rate-table"][0][4:] == ["failed % before 2026-11-16", "failed % from 2026-11-16"]
    assert all(cell != "-" for row in november.body("failure-rate-table") for cell in row)


def test_today_stored_in_part_is_in_progress_in_the_coverage_not_missing(warehouse_url, tmp_path):
    html = report_html(warehouse_url, tmp_path, today_in_progress=True)
    page = ReportPage(html)
    assert dict(page.body("coverage-table"))["in progress"] == "1"
    assert page.body("not-synced-table") == [["2026-11-12", "failed"]]  # 11-30 is not listed as missing
    assert "2026-11-30 (today, UTC) is in progress" in html
    assert dict(page.body("headline"))["days"] == "28 synced, 1 failed, 1 in progress"


@pytest.mark.postgres
def test_the_page_names_the_warehouse_without_its_password(postgres_url, tmp_path):
    # The test server trusts local connections, so any password is accepted: the URL may hold one.
    url = postgres_url.replace("postgres@", "postgres:not-for-reports@")
    html = report_html(url, tmp_path)
    assert "not-for-reports" not in html
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in html


def test_loading_the_definitions_loads_no_matplotlib():
    # Issue 23: loading the definitions is fast; the charts' library is loaded by the first report only.
    code = ("import sys, pipeline.definitions, pipeline.defs.report.assets, pipeline.report.synced_days; "
            "pipeline.definitions.defs(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env_without_secrets(), "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
