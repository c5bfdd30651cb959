"""The report's figures, computed by the warehouse's SQL (sql/report/), equal the same figures computed here with
pandas over the rows inserted: on SQLite and on PostgreSQL, for every project and for one."""

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from pipeline.report.coverage import AT_RISK, FAILED, GONE, IN_PROGRESS, MISSING
from pipeline.report.figures import ReportScope, collect_figures
from pipeline.report.period import ReportPeriod
from tests.support.report_helpers import (
    ATTEMPTED,
    NOW,
    PERIOD,
    SYNCED,
    Expected,
    backup_jobs,
    known_jobs,
    load,
    write_ledger,
)

START = date(2026, 10, 1)


def scope(project: str | None = None, coverage: tuple[str, ...] = ("p1", "p2")) -> ReportScope:
    return ReportScope(project, project or "all projects", (project,) if project else coverage, START)


def frame_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize("project", [None, "p1", "p2"])
def test_every_figure_equals_the_same_figure_computed_from_the_rows(warehouse_url, project):
    jobs = known_jobs()
    warehouse = load(warehouse_url, jobs)
    figures = collect_figures(warehouse, PERIOD, scope(project), NOW)
    warehouse.dispose()
    expected = Expected(jobs, project)

    frame_equal(figures.jobs_by_day, expected.jobs_by_day())
    assert figures.jobs == len(expected.in_period)
    assert figures.jobs_in_status("Failed") == (expected.in_period["status"] == "Failed").sum()
    for listed, (rows, total) in [
        (figures.failures_by_name, expected.failures_by_name()),
        (figures.durations_by_name, expected.durations_by_name()),
        (figures.backups_by_instance, expected.backups_by_instance()),
        (figures.failed_backups, expected.failed_backups()),
        (figures.running, expected.running()),
    ]:
        assert listed.total == total
        shown = listed.rows.drop(columns=["age"], errors="ignore")
        frame_equal(shown, rows[list(shown.columns)])
    assert figures.backups == len(expected.backups())
    frame_equal(figures.failures_by_day, expected.failures_by_day())
    freshness, instances = expected.backup_freshness()
    listed = figures.backup_freshness.listed
    assert listed.total == instances and figures.backup_freshness.as_of == NOW
    frame_equal(listed.rows.drop(columns="since"), freshness[list(listed.rows.columns.drop("since"))])
    assert (listed.rows["since"].dropna() == pd.Timestamp(NOW) - listed.rows["last_backup_at"].dropna()).all()
    assert figures.backup_freshness.without_backup == (freshness["freshness"] == 0).sum()
    assert figures.backup_freshness.overdue == (freshness["freshness"] == 1).sum()
    assert figures.running_by_age == expected.running_by_age()
    assert (figures.running.rows["age"] == pd.Timestamp(NOW) - figures.running.rows["created_at"]).all()


def test_every_instance_is_listed_without_a_backup_first_then_overdue_then_the_oldest_backup(warehouse_url):
    # Four instances at 11-30 23:50 (NOW): one whose only backup of the period failed (an older one succeeded before
    # it), one with no backup job at all, one backed up two days before, one an hour before.
    warehouse = load(warehouse_url, backup_jobs())
    figures = collect_figures(warehouse, PERIOD, scope("p1"), NOW)
    warehouse.dispose()
    freshness = figures.backup_freshness
    assert list(freshness.listed.rows["instance_name"]) == ["never-ok", "no-backup-job", "two-days", "fresh"]
    assert list(freshness.listed.rows["freshness"]) == [0, 0, 1, 2]
    assert (freshness.without_backup, freshness.overdue, freshness.listed.total) == (2, 1, 4)
    assert list(freshness.listed.rows["failed"]) == [1, 0, 0, 0]
    assert freshness.listed.rows["since"].iloc[3] == pd.Timedelta(hours=1)  # ended_at, not created_at


def test_the_lists_are_cut_and_say_how_many_they_left_out(sqlite_url):
    warehouse = load(sqlite_url, known_jobs())
    figures = collect_figures(warehouse, PERIOD, scope(), NOW)
    warehouse.dispose()
    # 14 task names failed and completed jobs; 40 jobs were Running.
    assert (len(figures.failures_by_name.rows), figures.failures_by_name.left_out) == (10, 4)
    assert (len(figures.durations_by_name.rows), figures.durations_by_name.left_out) == (10, 4)
    assert (len(figures.running.rows), figures.running.left_out) == (20, 20)


def test_an_empty_period_has_no_figures_but_zeros(warehouse_url):
    warehouse = load(warehouse_url, known_jobs())
    empty = ReportPeriod(date(2025, 1, 1), date(2025, 1, 31))
    figures = collect_figures(warehouse, empty, scope(), NOW)
    warehouse.dispose()
    assert figures.jobs == 0 and figures.jobs_by_day.empty
    for listed in (figures.failures_by_name, figures.durations_by_name, figures.backups_by_instance,
                   figures.failed_backups, figures.running):
        assert listed.total == 0 and listed.rows.empty
    assert figures.backups == 0 and not any(figures.running_by_age.values())


def test_the_coverage_of_each_day_comes_from_the_sync_ledger(warehouse_url):
    now = datetime(2026, 11, 30, 0, 15, tzinfo=timezone.utc)
    period = ReportPeriod(date(2026, 10, 20), date(2026, 11, 29))
    start = date(2026, 10, 25)  # the days before are no partitions: not counted
    counted = pd.date_range(start, period.last_day).date
    day = lambda month, n: date(2026, month, n)  # noqa: E731
    # p1's days not synced: None is no ledger row. Ages on 11-30: 10-30 is 31 days old, 10-31 30, 11-07 23.
    p1 = {day(10, 27): None, day(10, 30): None, day(10, 31): FAILED, day(11, 6): None, day(11, 7): ATTEMPTED,
          day(11, 8): None, day(11, 10): FAILED, day(11, 15): ATTEMPTED, day(11, 20): None}
    p2 = {day(11, 25): None, day(11, 26): FAILED}
    ledger = {(project, d): kinds.get(d, SYNCED) for project, kinds in (("p1", p1), ("p2", p2)) for d in counted}
    ledger[("p3", day(11, 20))] = SYNCED  # a project outside the report's coverage: never counted
    warehouse = load(warehouse_url, known_jobs())
    write_ledger(warehouse, {key: kind for key, kind in ledger.items() if kind is not None})
    both = collect_figures(warehouse, period, ReportScope(None, "all", ("p1", "p2"), start), now).coverage
    only_p2 = collect_figures(warehouse, period, ReportScope("p2", "p2", ("p2",), start), now).coverage
    warehouse.dispose()

    # Older than 31 days: gone; 23 to 30 days: at risk; then failed (last attempt failed) or missing.
    assert both.not_synced() == [
        (day(10, 27), GONE), (day(10, 30), GONE), (day(10, 31), AT_RISK), (day(11, 6), AT_RISK),
        (day(11, 7), AT_RISK), (day(11, 8), MISSING), (day(11, 10), FAILED), (day(11, 15), MISSING),
        (day(11, 20), MISSING), (day(11, 25), MISSING), (day(11, 26), FAILED),
    ]
    assert both.counts() == {"synced": len(counted) - 11, FAILED: 2, MISSING: 4, AT_RISK: 3, GONE: 2, IN_PROGRESS: 0}
    assert (both.first_day, both.last_day) == (start, period.last_day)
    assert only_p2.not_synced() == [(day(11, 25), MISSING), (day(11, 26), FAILED)]


def test_today_with_a_ledger_row_is_in_progress_not_missing(warehouse_url):
    now = datetime(2026, 11, 30, 14, 0, tzinfo=timezone.utc)
    period = ReportPeriod(date(2026, 11, 27), date(2026, 11, 30))
    warehouse = load(warehouse_url, known_jobs())
    # An intraday sync has stored part of today: attempted, never complete before the day ends.
    write_ledger(warehouse, {("p1", date(2026, 11, d)): SYNCED for d in (27, 28, 29)}
                 | {("p1", date(2026, 11, 30)): ATTEMPTED})
    coverage = collect_figures(warehouse, period, ReportScope(None, "all", ("p1",), START), now).coverage
    without_today = collect_figures(warehouse, period, ReportScope(None, "all", ("p2",), START), now).coverage
    warehouse.dispose()
    assert coverage.states == {date(2026, 11, 27): "synced", date(2026, 11, 28): "synced",
                               date(2026, 11, 29): "synced", date(2026, 11, 30): IN_PROGRESS}
    assert coverage.not_synced() == [] and coverage.counts()[IN_PROGRESS] == 1
    # No sync has stored any of today for p2: today is in progress all the same, never missing.
    assert without_today.states[date(2026, 11, 30)] == IN_PROGRESS and without_today.last_day == date(2026, 11, 30)


def test_with_an_empty_ledger_every_day_is_missing_or_at_risk(warehouse_url):
    warehouse = load(warehouse_url, known_jobs())  # jobs stored, but no sync recorded in the ledger
    coverage = collect_figures(warehouse, PERIOD, scope(), NOW).coverage
    warehouse.dispose()
    # NOW is 11-30 (in progress): 11-01 to 11-07 are 23 to 29 days old.
    assert coverage.counts() == {"synced": 0, FAILED: 0, MISSING: 22, AT_RISK: 7, GONE: 0, IN_PROGRESS: 1}


def test_today_is_counted_in_progress_not_missing(sqlite_url):
    warehouse = load(sqlite_url, known_jobs())
    # Today's intraday sync attempted the day without completing it, as it must until midnight.
    write_ledger(warehouse, {("p1", date(2026, 11, 29)): SYNCED, ("p1", date(2026, 11, 30)): ATTEMPTED})
    now = datetime(2026, 11, 30, 14, 0, tzinfo=timezone.utc)
    coverage = collect_figures(warehouse, ReportPeriod(date(2026, 11, 29), date(2026, 11, 30)),
                               ReportScope("p1", "p1", ("p1",), date(2026, 11, 29)), now).coverage
    warehouse.dispose()
    assert coverage.states == {date(2026, 11, 29): "synced", date(2026, 11, 30): IN_PROGRESS}


def test_with_no_project_configured_the_ledger_names_the_projects(sqlite_url):
    warehouse = load(sqlite_url, known_jobs())
    write_ledger(warehouse, {("p1", date(2026, 11, 28)): SYNCED, ("p9", date(2026, 11, 28)): "failed"})
    now = datetime(2026, 11, 30, 0, 15, tzinfo=timezone.utc)
    coverage = collect_figures(warehouse, ReportPeriod(date(2026, 11, 27), date(2026, 11, 29)),
                               ReportScope(None, "all", (), START), now).coverage
    warehouse.dispose()
    assert coverage.projects == ("p1", "p9")
    assert coverage.states == {date(2026, 11, 27): MISSING, date(2026, 11, 28): FAILED, date(2026, 11, 29): MISSING}
