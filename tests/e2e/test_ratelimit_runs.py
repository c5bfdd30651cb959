"""Whole Dagster runs under the simulator's gateway quota: a throttled run is not a failed one, its pace is in its
metadata and its log, and DDS_MAX_RATE under the quota leaves no request throttled."""

import logging
from datetime import timedelta

from tests.support.dagster_helpers import TOKEN, pipeline_under_test, yesterday
from tests.support.reliability_helpers import assert_exact_data


def sync_errors(p, result) -> list[str]:
    """ERROR lines of the run's sync step and of the run itself (not of checks on other matters, such as days
    at risk of the test's fresh warehouse)."""
    return [event.user_message for event in p.instance.all_logs(result.run_id)
            if event.level >= logging.ERROR and event.step_key in (None, "dds_jobs")]


def run_log(p, result) -> str:
    return "\n".join(event.user_message for event in p.instance.all_logs(result.run_id))


def test_a_run_under_a_quota_succeeds_with_its_pace_in_metadata_and_log_and_no_error(tmp_path, monkeypatch):
    last = yesterday()
    first = last - timedelta(days=2)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=400, rate_limit=3) as p:
        result = p.sync(first, last)
        assert result.success
        assert_exact_data(p, first, last)
        refused = sum(1 for request in p.sim.requests if request.status == 429)
        [summary] = p.run_summaries("dds_jobs")
        assert refused >= 1 and summary["fetch_throttled"] == summary["fetch_retries_by_kind"]["429"] == refused
        assert summary["fetch_rate_allowed"] <= 3
        assert 1 <= summary["fetch_concurrency_min"] <= summary["fetch_concurrency_max"] <= 12
        assert summary["fetch_rate_per_s"] > 0
        # Run-wide figures once per run, not on each day.
        assert "fetch_throttled" not in p.day_metadata("dds_jobs", last)
        # Ridden out, the 429s are figures and one line of the log, never an error.
        assert sync_errors(p, result) == []
        assert f"{refused} answered 429 (throttled, waited out and sent again)" in run_log(p, result)


def test_dds_max_rate_under_the_quota_leaves_no_request_throttled(tmp_path, monkeypatch):
    last = yesterday()
    first = last - timedelta(days=2)
    monkeypatch.setenv("DDS_MAX_RATE", "4")
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=400, rate_limit=5) as p:
        assert p.settings.max_rate == 4.0
        result = p.sync(first, last)
        assert result.success
        assert_exact_data(p, first, last)
        assert [request.status for request in p.sim.requests] == [200] * len(p.sim.requests)
        [summary] = p.run_summaries("dds_jobs")
        assert "fetch_throttled" not in summary and summary["fetch_rate_allowed"] == 4.0


def throttling_warnings(p, result) -> list[str]:
    return [event.user_message for event in p.instance.all_logs(result.run_id)
            if event.level == logging.WARNING and "DDS API throttling" in event.user_message]


def test_a_run_with_more_than_5_percent_throttled_warns_once_with_the_figure(tmp_path, monkeypatch):
    last = yesterday()
    first = last - timedelta(days=2)
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        # The gateway's 429 answer, three times, in a run of a few requests.
        p.sim.faults.inject("429", times=3, retry_after=0)
        result = p.sync(first, last)
        assert result.success
        assert_exact_data(p, first, last)
        [summary] = p.run_summaries("dds_jobs")
        sent, refused = summary["fetch_requests"], summary["fetch_throttled"]
        assert refused == 3 and refused > 0.05 * sent
        assert throttling_warnings(p, result) == [
            f"DDS API throttling: 3 of {sent} requests ({3 / sent:.1%}) were answered 429 in this run, more than 5%; "
            "each was waited out and sent again, but the gateway's quota (shared with the tenant's other tools) is "
            "tight: set DDS_MAX_RATE under it, or run other heavy API users at another time"]
        assert sync_errors(p, result) == []


def test_a_run_with_few_429s_does_not_warn(tmp_path, monkeypatch):
    last = yesterday()
    first = last - timedelta(days=6)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=400) as p:
        p.sim.faults.inject("429", times=1, retry_after=0)
        result = p.sync(first, last)
        assert result.success
        [summary] = p.run_summaries("dds_jobs")
        assert summary["fetch_throttled"] == 1 and summary["fetch_requests"] > 20
        assert throttling_warnings(p, result) == []


def test_a_retried_request_is_a_line_of_the_runs_own_log_at_info(tmp_path, monkeypatch):
    """The package's own log lines (Python loggers under ``pipeline``: retries, a view left busy) reach the step's
    log, so the UI and the console show them among the run's other lines, at their own level."""
    last = yesterday()
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        p.sim.faults.inject("500", times=2)
        result = p.sync(last, last)
        assert result.success
        assert_exact_data(p, last, last)
        retried = [event for event in p.instance.all_logs(result.run_id)
                   if "retrying in" in event.user_message and event.step_key == "dds_jobs"]
        assert len(retried) == 2 and {event.level for event in retried} == {logging.INFO}
        assert all(TOKEN not in event.user_message for event in retried)
    # Outside a step the package's logger is as it was: nothing of the run is left attached to it.
    assert logging.getLogger("pipeline").handlers == [] and logging.getLogger("pipeline").level == logging.NOTSET
