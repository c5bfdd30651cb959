"""The DDS API simulator, continued: injected faults, what it records, extra routes, how it is served (loopback
only, the CLI's options), and many pagers at once. Served from the command line: tests/e2e/test_simulate_command.py."""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import requests

from pipeline.simulator import ApiError, DdsSimulator, Response, json_response
from pipeline.cli.simulate import add_arguments, config_from_args
from pipeline.simulator.faults import FAULT_KINDS
from tests.support.simulator_http import (
    AUTH,
    NOW,
    TOKEN,
    UUID4,
    all_pages,
    api_time,
    assert_api_error,
    config,
    get_jobs,
)


def fault_answer(sim, kind, **params):
    sim.faults.inject(kind, **params)
    faulted = get_jobs(sim, limit=20)
    assert sim.requests[-1].fault == kind
    return faulted


@pytest.mark.parametrize("kind, status", [("429", 429), ("429_no_retry_after", 429), ("500", 500), ("503", 503)])
def test_json_error_faults(sim, kind, status):
    response = fault_answer(sim, kind, retry_after=3)
    assert response.status_code == status and UUID4.fullmatch(response.headers["X-Request-Id"])
    assert response.headers.get("Retry-After") == ("3" if kind == "429" else None)
    body = response.json()
    if status == 429:
        assert body["error_code"] == "APIG.0308" and "policy user over ratelimit" in body["error_msg"]
    else:
        assert body["error_code"].startswith("DBS." if status == 500 else "APIG.")
    assert get_jobs(sim).status_code == 200 and sim.requests[-1].fault is None


def test_html_and_non_json_faults(sim):
    page = fault_answer(sim, "502_html")
    assert page.status_code == 502 and page.headers["Content-Type"].startswith("text/html")
    garbage = fault_answer(sim, "invalid_json")
    assert garbage.status_code == 200
    for response in (page, garbage):
        with pytest.raises(requests.JSONDecodeError):
            response.json()


def test_truncated_body_is_a_prefix_of_the_real_one(sim):
    cut = fault_answer(sim, "truncate")
    whole = get_jobs(sim, limit=20)
    assert cut.status_code == 200 and int(cut.headers["Content-Length"]) == len(cut.content)
    assert 0 < len(cut.content) < len(whole.content) and whole.content.startswith(cut.content)
    with pytest.raises(requests.JSONDecodeError):
        cut.json()


def test_dropped_connection_and_slow_answer(sim):
    sim.faults.inject("drop", times=2)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            get_jobs(sim)
    assert [request.status for request in sim.requests[-2:]] == [0, 0]
    sim.faults.inject("slow", delay=3)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{sim.url}/v3.1/{sim.project_id}/jobs", params={"start_time": "2026-11-19T00:00:00Z",
                     "end_time": "2026-11-20T00:00:00Z"}, headers=AUTH, timeout=0.3)
    sim.faults.inject("slow", delay=0.2)
    assert get_jobs(sim).status_code == 200 and sim.requests[-1].fault == "slow"
    with DdsSimulator(config(latency_s=3), port=0) as sleepy, pytest.raises(requests.ReadTimeout):
        requests.get(f"{sleepy.url}/v3.1/{sleepy.project_id}/jobs", headers=AUTH, timeout=0.3)


def test_every_jobs_answer_takes_the_latency_its_own_work_included():
    with DdsSimulator(config(latency_s=0.15), port=0) as sleepy:
        for project_id in (sleepy.project_id, "not-served"):  # a page, and a refusal (403)
            started = time.monotonic()
            answer = requests.get(f"{sleepy.url}/v3.1/{project_id}/jobs", headers=AUTH, timeout=10,
                                  params={"start_time": "2026-11-19T00:00:00Z", "end_time": "2026-11-20T00:00:00Z"})
            assert time.monotonic() - started >= 0.15 and answer.status_code in (200, 403)
        assert [request.status for request in sleepy.requests] == [200, 403]


def test_queued_faults_hit_only_job_requests_in_order(sim):
    sim.faults.inject("500", times=2)
    sim.faults.inject("429")
    assert requests.get(f"{sim.url}/nowhere", timeout=10).status_code == 404
    assert [get_jobs(sim).status_code for _ in range(5)] == [500, 500, 429, 200, 200]
    assert [request.fault for request in sim.requests] == [None, "500", "500", "429", None, None]


def test_random_faults_follow_their_seed(sim):
    def statuses(seed):
        sim.faults.random({"500": 0.3, "429": 0.2}, seed=seed)
        return [get_jobs(sim, limit=1).status_code for _ in range(40)]
    first = statuses(1)
    assert first == statuses(1) and {500, 429, 200} == set(first)
    sim.faults.random({"500": 1.0})
    assert {get_jobs(sim).status_code for _ in range(3)} == {500}
    sim.faults.clear()
    assert get_jobs(sim).status_code == 200


@pytest.mark.parametrize("call, fragment", [
    (lambda faults: faults.inject("418"), "unknown fault kind '418'"),
    (lambda faults: faults.inject("500", times=0), "times"),
    (lambda faults: faults.inject("429", retry_after=-1), "retry_after"),
    (lambda faults: faults.random({"500": 0.7, "drop": 0.5}), "more than 1"),
    (lambda faults: faults.random({"500": -0.1}), "within 0..1"),
])
def test_bad_fault_settings_are_refused(sim, call, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        call(sim.faults)
    assert sim.faults.pending == 0 and get_jobs(sim).status_code == 200
    assert set(FAULT_KINDS) == {"429", "429_no_retry_after", "500", "502_html", "503", "drop", "truncate", "slow",
                                "invalid_json"}


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "::1", "192.168.1.10"])
def test_only_loopback_binding_is_allowed(host):
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        DdsSimulator(config(), host=host)


@pytest.mark.parametrize("overrides, fragment", [
    ({"project_ids": ()}, "project_ids"), ({"project_ids": ("a/b",)}, "project id"),
    ({"jobs_per_day": -1}, "jobs_per_day"), ({"history_days": 0}, "history_days"),
    ({"retention_days": "30"}, "retention_days"), ({"now": datetime(2026, 1, 1)}, "time-zone aware"),
    ({"running_ended_at": "zero"}, "running_ended_at"), ({"order": "random"}, "order"),
    ({"latency_s": -1}, "latency_s"), ({"token": ""}, "token"), ({"extra_routes": [("GET", "/x")]}, "extra route"),
])
def test_bad_configuration_is_refused_in_one_line(overrides, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)) as error:
        config(**overrides)
    assert "\n" not in str(error.value)


def test_requests_are_recorded(sim):
    get_jobs(sim, headers={**AUTH, "X-Trace": "t-1"}, status="Failed", limit=5)
    recorded = sim.requests[-1]
    assert (recorded.method, recorded.path, recorded.status, recorded.fault) == (
        "GET", f"/v3.1/{sim.project_id}/jobs", 200, None)
    assert recorded.query == {"start_time": api_time(NOW - timedelta(days=30)), "end_time": api_time(NOW),
                              "status": "Failed", "limit": "5"}
    assert recorded.headers["X-Trace"] == "t-1" and "limit=5" in recorded.raw_query


def test_extra_routes_and_a_pluggable_authenticator():
    seen = []

    class HeaderAuthenticator:
        def check(self, request):
            seen.append((request.method, request.path, request.raw_query))
            if request.header("x-project-key") != "k1":
                raise ApiError(401, "APIG.0301", "Incorrect IAM authentication information: signature mismatch")

    def issue_token(simulator, request) -> Response:
        user = json.loads(request.body)["auth"]["identity"]["password"]["user"]["name"]
        return json_response(201, {"token": {"user": {"name": user}}}, headers={"X-Subject-Token": "t-" + user})

    routes = [("POST", r"/v3/auth/tokens", issue_token, False)]
    with DdsSimulator(config(authenticator=HeaderAuthenticator(), extra_routes=routes), port=0) as sim:
        login = requests.post(f"{sim.url}/v3/auth/tokens", timeout=10,
                              json={"auth": {"identity": {"password": {"user": {"name": "ann"}}}}})
        assert login.status_code == 201 and login.headers["X-Subject-Token"] == "t-ann" and not seen
        assert_api_error(get_jobs(sim), 401, "APIG.0301", "signature mismatch")
        assert get_jobs(sim, headers={"X-Project-Key": "k1"}, limit=2).status_code == 200
        assert seen[-1][:2] == ("GET", f"/v3.1/{sim.project_id}/jobs") and "limit=2" in seen[-1][2]


def test_stop_ends_kept_alive_connections():
    sim = DdsSimulator(config(), port=0).start()
    jobs_url = f"{sim.url}/v3.1/{sim.project_id}/jobs"
    with requests.Session() as session:
        assert session.get(jobs_url, headers=AUTH, timeout=10).status_code == 400
        sim.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(jobs_url, headers=AUTH, timeout=10)


def test_cli_options_make_the_config():
    import argparse
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = config_from_args(parser.parse_args([]))
    # The defaults serve the demo's jobs (pipeline/simulator/dataset.py).
    assert (defaults.seed, defaults.token, defaults.jobs_per_day, defaults.include_total_count) == (2026, TOKEN, 200, True)
    custom = config_from_args(parser.parse_args(["--seed", "3", "--latency-ms", "250", "--no-total-count",
                                                 "--project-id", "p1", "--project-id", "p2", "--token", ""]))
    assert (custom.seed, custom.latency_s, custom.include_total_count, custom.project_ids, custom.token) == (
        3, 0.25, False, ("p1", "p2"), None)
    with pytest.raises(ValueError, match="--latency-ms"):
        config_from_args(parser.parse_args(["--latency-ms", "-5"]))


def test_concurrent_pagers_all_see_the_whole_window():
    with DdsSimulator(config(jobs_per_day=300), port=0) as sim:
        expected = sim.store.visible_jobs(sim.project_id, NOW - timedelta(days=30), NOW)

        def page_everything(_):
            with requests.Session() as session:
                return all_pages(sim, limit=100, session=session)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(page_everything, range(8)))
        assert all(result == expected for result in results) and len(expected) > 8000


def test_benchmark_300k_jobs_and_3000_pages():
    """Prints figures; asserts only the results, never the time."""
    started = time.perf_counter()
    sim = DdsSimulator(config(jobs_per_day=10_000, history_days=30), port=0)
    generated_s = time.perf_counter() - started
    total = sim.store.job_count(sim.project_id)
    with sim:
        window = {"start_time": api_time(NOW - timedelta(days=30)), "end_time": api_time(NOW)}
        visible = get_jobs(sim, **window, limit=1).json()["total_count"]
        pages = [offset for offset in range(0, min(visible, 300_000), 100)][:3000]

        def fetch(offsets):
            with requests.Session() as session:
                return sum(len(get_jobs(sim, session=session, **window, offset=offset).json()["jobs"])
                           for offset in offsets)

        started = time.perf_counter()
        sequential = fetch(pages[:500])
        sequential_s = time.perf_counter() - started
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            concurrent = sum(pool.map(fetch, [pages[i::8] for i in range(8)]))
        concurrent_s = time.perf_counter() - started
    assert total > 290_000 and sequential == 50_000 and concurrent == min(visible, 300_000)
    print(f"\nsimulator: generated {total:,} jobs in {generated_s:.2f} s; "
          f"500 pages sequentially in {sequential_s:.2f} s ({sequential_s * 2:.2f} ms/page); "
          f"{len(pages):,} pages over 8 sessions in {concurrent_s:.2f} s")
