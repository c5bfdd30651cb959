"""Whole Dagster runs under the simulator's gateway quota: a throttled run is not a failed one, its pace is in its
metadata and its log, and DDS_MAX_RATE under the quota leaves no request throttled."""

import logging
from datetime import timedelta

from tests.support.dagster_helpers import pipeline_under_test, yesterday
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
