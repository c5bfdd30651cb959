"""Faults of the network and the provider during whole Dagster runs over HTTP against the simulator: the stored
jobs stay exact, the retries are counted by kind, and a fault that outlasts the retries fails the run clearly
without touching what is stored."""

import threading
from collections import Counter
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import pytest

from pipeline.api.retry import RETRY_KINDS
from pipeline.simulator import FAULT_KINDS
from tests.support.dagster_helpers import TOKEN, expected_jobs, last_day, late_on_last_day, pipeline_under_test
from tests.support.reliability_helpers import (
    FAST_RETRIES,
    assert_exact_data,
    failure_messages,
    hooked_jobs_route,
    job_requests,
    parquet_files,
    stored_jobs,
    sync_with_api,
    wait_for,
)

# How the client classes each fault the simulator injects.
RETRY_KIND_OF_FAULT = {
    "429": "429", "429_no_retry_after": "429", "500": "5xx", "502_html": "5xx", "503": "5xx", "drop": "connection",
    "truncate": "invalid_json", "invalid_json": "invalid_json", "slow": "timeout",
}


def every_fault_kind_once_paging_starts():
    """A jobs-route hook queueing one fault of every kind as the first page is answered: they then land on the
    pages requested concurrently, not all on one request."""
    queued = threading.Event()

    def hook(sim, request) -> None:
        # Page one is always requested alone (the others wait for its total_count): no race here.
        if not queued.is_set():
            queued.set()
            for kind in FAULT_KINDS:
                sim.faults.inject(kind, retry_after=1, delay=1.5)

    return hook


def test_a_multi_day_sync_under_every_fault_at_once_stores_exactly_the_jobs(tmp_path, monkeypatch):
    first = last_day() - timedelta(days=4)
    routes = [hooked_jobs_route(every_fault_kind_once_paging_starts())]
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=300, extra_routes=routes) as p:
        # On top of the queued ones, about one request in four fails at random (seeded).
        p.sim.faults.random({kind: 0.03 for kind in FAULT_KINDS}, seed=7, retry_after=1, delay=1.5)
        result = sync_with_api(p, first, last=last_day(), **FAST_RETRIES)
        assert result.success, failure_messages(result)
        jobs = assert_exact_data(p, first, last_day())
        assert len(jobs) > 1000
        [meta] = p.run_summaries("dds_jobs")
        # A "slow" answer is recorded once its delay is over, after the client gave up on it.
        wait_for(lambda: len(job_requests(p.sim)) == meta["fetch_requests"], "the simulator's last records", 10)
        injected = Counter(r.fault for r in job_requests(p.sim) if r.fault)
        assert injected.keys() == set(FAULT_KINDS)
        for kind in RETRY_KINDS:
            faults_of_kind = sum(n for fault, n in injected.items() if RETRY_KIND_OF_FAULT[fault] == kind)
            assert meta["fetch_retries_by_kind"].get(kind, 0) == faults_of_kind, kind
        assert meta["fetch_retries"] == sum(injected.values()) == meta["fetch_requests"] - meta["fetch_pages"]
        # Run-wide figures stay off the days' partitions.
        assert "fetch_retries" not in p.day_metadata("dds_jobs", first)
        print(f"\nfault suite: {sum(injected.values())} faults injected and survived "
              f"({dict(sorted(injected.items()))}) over {meta['fetch_pages']} pages, {len(jobs)} jobs, 0 lost")


@pytest.mark.parametrize(
    "fault, status, error_code",
    [("500", 500, "DBS.200999"), ("429_no_retry_after", 429, "APIG.0308"), ("502_html", 502, "502 Bad Gateway")],
)
def test_a_fault_outlasting_the_retries_fails_the_run_clearly_and_touches_nothing(
    tmp_path, monkeypatch, fault, status, error_code
):
    first = last_day() - timedelta(days=1)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=200, now=late_on_last_day()) as p:
        assert p.sync(first, last_day()).success
        rows, files = stored_jobs(p.settings.warehouse_url), parquet_files(p.settings.parquet_root)
        # Any load would show: it moves every row's last_seen_at, and the state of the jobs still running.
        p.sim.store.complete_running()
        p.sim.faults.inject(fault, times=50)
        sent_before = len(job_requests(p.sim))

        result = sync_with_api(p, first, last_day(), retry_max_attempts=3, retry_base_delay_seconds=0.01)

        assert not result.success
        [message] = failure_messages(result)
        assert "\n" not in message and TOKEN not in message
        window = f"{first.isoformat()}T00:00:00Z..{(last_day() + timedelta(days=1)).isoformat()}T00:00:00Z"
        for part in ("after 3 attempts", f"HTTP {status}", error_code, f"for window {window}"):
            assert part in message, (part, message)
        pd.testing.assert_frame_equal(stored_jobs(p.settings.warehouse_url), rows)
        assert parquet_files(p.settings.parquet_root) == files
        assert len(job_requests(p.sim)) == sent_before + 3  # page one, tried three times: nothing else was asked
        p.sim.faults.clear()
        assert p.sync(first, last_day()).success
        assert_exact_data(p, first, last_day())


def test_jobs_created_while_a_window_is_paged_are_neither_missed_nor_doubled(tmp_path, monkeypatch):
    first = last_day() - timedelta(days=2)
    created: list[str] = []
    once = threading.Lock()

    def create_jobs_as_paging_starts(sim, request) -> None:
        # Newest first, jobs created late on the last day go to the front and shift every offset behind them.
        with once:
            if request.query.get("offset") != "0" and not created:
                created.extend(sim.store.add_jobs(150, created_at=late_on_last_day()))
                created.extend(sim.store.add_jobs(150, created_at=datetime.combine(first, time(12), timezone.utc)))

    routes = [hooked_jobs_route(create_jobs_as_paging_starts)]
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=300, extra_routes=routes) as p:
        before = expected_jobs(p.sim, first, last_day())
        assert p.sync(first, last_day()).success
        assert len(created) == 300
        ids = stored_jobs(p.settings.warehouse_url)["id"]
        assert ids.is_unique
        assert before.keys() <= set(ids) <= expected_jobs(p.sim, first, last_day()).keys()
        assert p.sync(first, last_day()).success
        assert set(created) <= assert_exact_data(p, first, last_day()).keys()
