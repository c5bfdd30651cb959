"""A broken, lying, down or stormy API during whole Dagster runs over HTTP against the simulator (issue 13): a
broken answer fails the run naming its window and stores nothing, an inflated total_count costs a bounded number
of requests, an outage shorter than the retry budget is ridden out, a longer one fails cleanly, and a storm over
a 10-day sync ends with exactly the simulator's jobs."""

import re
from collections import Counter
from datetime import timedelta

import pandas as pd
import pytest

from pipeline.definitions import build_definitions
from pipeline.config import Deployment
from pipeline.simulator.answers import BROKEN_ANSWERS
from pipeline.simulator.outages import STORM_MIX
from tests.support.dagster_helpers import (
    last_day,
    late_on_last_day,
    TOKEN,
    pipeline_under_test,
)
from tests.support.reliability_helpers import (
    assert_exact_data,
    failure_messages,
    job_requests,
    parquet_files,
    stored_jobs,
    sync_with_api,
)

# Retries that ride out short troubles quickly.
QUICK_RETRIES = {"retry_base_delay_seconds": 0.02, "retry_budget_seconds": 30.0, "read_timeout_seconds": 10.0}
# The storm's stalls last 1 s: this read timeout turns them into timeouts (a busy machine may time out an answer that
# was not stalled too, so the storm's counts are bounds).
STORM_RETRIES = {**QUICK_RETRIES, "read_timeout_seconds": 0.5}


def window_text(first, last) -> str:
    return f"{first.isoformat()}T00:00:00Z..{(last + timedelta(days=1)).isoformat()}T00:00:00Z"


@pytest.mark.parametrize("kind", [*BROKEN_ANSWERS, "invalid_json", "truncate"])
def test_an_answer_broken_for_good_fails_the_run_naming_the_window_and_stores_nothing(tmp_path, monkeypatch, kind):
    first = last_day() - timedelta(days=1)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=150, now=late_on_last_day()) as p:
        assert p.sync(first, last_day()).success
        rows, files = stored_jobs(p.settings.warehouse_url), parquet_files(p.settings.parquet_root)
        p.sim.store.complete_running()  # any load would show: Running jobs have ended since
        if kind in BROKEN_ANSWERS:
            p.sim.answers.break_answers(kind)
        else:
            p.sim.faults.random({kind: 1.0})

        result = sync_with_api(p, first, last_day(), retry_base_delay_seconds=0.01, retry_budget_seconds=0.3)

        assert not result.success
        [message] = failure_messages(result)
        assert "\n" not in message and TOKEN not in message and "(last: HTTP 200 " in message
        assert message.endswith(f"for window {window_text(first, last_day())}")
        assert int(re.search(r"DDS API kept failing after (\d+) attempts", message)[1]) > 1
        pd.testing.assert_frame_equal(stored_jobs(p.settings.warehouse_url), rows)
        assert parquet_files(p.settings.parquet_root) == files
        p.sim.answers.break_answers(None)
        p.sim.faults.clear()
        assert p.sync(first, last_day()).success
        assert_exact_data(p, first, last_day())


def test_an_inflated_total_count_costs_a_bounded_number_of_requests(tmp_path, monkeypatch):
    first = last_day() - timedelta(days=5)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=60, reported_total_count=10_000_000) as p:
        assert p.sync(first, last_day()).success
        jobs = assert_exact_data(p, first, last_day())
        sent = len(job_requests(p.sim))
        pages = len(jobs) // 100 + 1
        assert 300 < len(jobs) < 450 and pages <= sent <= pages + p.settings.max_concurrency - 1
        assert p.run_summaries("dds_jobs")[0]["fetch_requests"] == sent
        print(f"\ninflated total_count of 10,000,000: {len(jobs)} jobs, {sent} requests ({pages} pages needed)")


def test_an_api_down_for_a_while_is_ridden_out(tmp_path, monkeypatch):
    # Eight failures in a row: more than the six attempts a request used to get.
    first = last_day() - timedelta(days=2)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=150) as p:
        p.sim.outages.down(requests=8)
        result = sync_with_api(p, first, last_day(), **QUICK_RETRIES)
        assert result.success, failure_messages(result)
        assert_exact_data(p, first, last_day())
        statuses = [r.status for r in job_requests(p.sim)]
        assert statuses[:8] == [503] * 8 and set(statuses[8:]) == {200}
        assert p.run_summaries("dds_jobs")[0]["fetch_retries_by_kind"]["5xx"] == 8


def test_an_api_down_for_longer_than_the_budget_fails_the_run_cleanly_and_the_next_run_completes(
    tmp_path, monkeypatch
):
    first = last_day() - timedelta(days=1)
    monkeypatch.setenv("DDS_RETRY_BUDGET_SECONDS", "1")
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=100, now=late_on_last_day()) as p:
        assert p.settings.retry_budget_seconds == 1
        assert p.sync(first, last_day()).success
        rows, files = stored_jobs(p.settings.warehouse_url), parquet_files(p.settings.parquet_root)
        p.sim.store.complete_running()
        p.sim.outages.down(seconds=600)

        result = p.sync(first, last_day(), raise_on_error=False)

        assert not result.success
        [message] = failure_messages(result)
        assert "would pass the 1 s retry budget" in message and "HTTP 503 APIG.0202 Backend unavailable" in message
        assert message.endswith(f"for window {window_text(first, last_day())}")
        pd.testing.assert_frame_equal(stored_jobs(p.settings.warehouse_url), rows)
        assert parquet_files(p.settings.parquet_root) == files
        p.sim.outages.clear()
        assert p.sync(first, last_day()).success
        assert_exact_data(p, first, last_day())


def test_a_storm_over_a_ten_day_sync_ends_with_exactly_the_simulator_s_jobs(tmp_path, monkeypatch):
    first = last_day() - timedelta(days=9)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=300) as p:
        # About half the answers fail; every 10th request stalls past the read timeout (70 s in production).
        p.sim.outages.storm(seconds=600, stall_seconds=1.0, stall_every=10, seed=13)
        result = sync_with_api(p, first, last_day(), **STORM_RETRIES)
        p.sim.outages.clear()
        assert result.success, failure_messages(result)
        jobs = assert_exact_data(p, first, last_day())
        assert len(jobs) > 2500
        faults = Counter(r.fault for r in job_requests(p.sim) if r.fault)
        assert faults["slow"] >= 1 and set(faults) <= {"slow", *STORM_MIX}
        [meta] = p.run_summaries("dds_jobs")
        assert meta["fetch_retries"] > 0 and meta["fetch_requests"] > meta["fetch_pages"]
        print(f"\nstorm: {dict(sorted(faults.items()))} over {meta['fetch_requests']} requests for "
              f"{meta['fetch_pages']} pages; {len(jobs)} jobs, 0 lost")


def test_the_retry_budget_setting_reaches_the_api_resource(tmp_path, monkeypatch):
    env = {"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_PROJECT_ID": "p1", "DDS_REGION": "ap-southeast-1"}
    assert Deployment.from_env(env).retry_budget_seconds == 300
    settings = Deployment.from_env({**env, "DDS_RETRY_BUDGET_SECONDS": "45"})
    api = build_definitions(settings).resources["dds_api"]
    assert api.retry_budget_seconds == 45 and api.retry_max_attempts is None
