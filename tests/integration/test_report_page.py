"""The report's HTML page: it shows every figure in its tables (checked against pandas over the rows inserted,
on SQLite, PostgreSQL and MariaDB), references nothing outside itself, its charts decode as SVG, and it says so
when a period is empty or without failures. Rendered by headless Chromium: tests/e2e/test_report_in_browser.py."""

import re
from datetime import date

import pytest

from pipeline.report.period import ReportPeriod
from tests.support.report_helpers import (
    Expected,
    ReportPage,
    decoded_chart,
    known_jobs,
    report_html,
)


def count(value: float) -> str:
    return f"{int(value):,}"


def test_the_tables_show_every_figure(warehouse_url, tmp_path):
    jobs = known_jobs()
    html = report_html(warehouse_url, tmp_path, jobs)
    page = ReportPage(html)
    expected = Expected(jobs)

    headline = dict(page.body("headline"))
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
    assert page.body("not-synced-table") == [["2026-11-12", "failed"], ["2026-11-30", "in progress"]]


def test_the_page_references_nothing_outside_itself_and_every_chart_decodes(sqlite_url, tmp_path):
    html = report_html(sqlite_url, tmp_path)
    page = ReportPage(html)
    assert not page.tags & {"script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video"}
    assert all(reference.startswith("data:") for reference in page.references), page.references
    assert not re.search(r"https?://|@import|url\(", html, re.I)
    assert len(page.images) == 6  # jobs per day, failure rate, durations, backups, Running ages, coverage
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
    assert len(page.images) == 5  # every chart but the failure rate's
    for source in page.images:
        decoded_chart(source)


@pytest.mark.postgres
def test_the_page_names_the_warehouse_without_its_password(postgres_url, tmp_path):
    # The test server trusts local connections, so any password is accepted: the URL may hold one.
    url = postgres_url.replace("postgres@", "postgres:not-for-reports@")
    html = report_html(url, tmp_path)
    assert "not-for-reports" not in html
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in html
