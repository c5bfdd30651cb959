"""The DDS API simulator over real HTTP on loopback: data, validation, auth, paging, clock, faults, CLI."""

import json
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import requests

from pipeline.simulator import TASK_NAMES, ApiError, DdsSimulator, Response, SimulatorConfig, json_response
from pipeline.simulator.cli import add_arguments, config_from_args
from pipeline.simulator.faults import FAULT_KINDS
from pipeline.simulator.jobs import DURATION_RANGES

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
TOKEN = "sim-token"
AUTH = {"X-Auth-Token": TOKEN}
API_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\+0000|\+0800|-0500)")
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def config(**overrides) -> SimulatorConfig:
    return SimulatorConfig(**{"now": NOW, "token": TOKEN, **overrides})


@pytest.fixture
def sim():
    with DdsSimulator(config(), port=0) as simulator:
        yield simulator


def api_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


def get_jobs(simulator: DdsSimulator, session=requests, headers=AUTH, project_id=None, **params):
    window = {"start_time": api_time(simulator.store.now - timedelta(days=30)),
              "end_time": api_time(simulator.store.now)}
    return session.get(f"{simulator.url}/v3.1/{project_id or simulator.project_id}/jobs",
                       params={**window, **params}, headers=headers, timeout=10)


def all_pages(simulator: DdsSimulator, limit: int = 100, session=requests, **params) -> list[dict]:
    jobs, offset = [], 0
    while True:
        response = get_jobs(simulator, session=session, offset=offset, limit=limit, **params)
        assert response.status_code == 200, response.text
        page = response.json()["jobs"]
        jobs.extend(page)
        if len(page) < limit:
            return jobs
        offset += limit


def assert_api_error(response: requests.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    assert fragment in body["error_msg"]
    assert UUID4.fullmatch(response.headers["X-Request-Id"])


def test_same_seed_gives_the_same_jobs_and_another_seed_others():
    with DdsSimulator(config(), port=0) as first, DdsSimulator(config(), port=0) as second, \
            DdsSimulator(config(seed=8), port=0) as other:
        jobs = all_pages(first)
        assert len(jobs) > 800
        assert all_pages(second) == jobs
        assert not {job["id"] for job in all_pages(other)} & {job["id"] for job in jobs}


def test_jobs_look_like_the_provider_s(sim):
    jobs = all_pages(sim)
    assert len(TASK_NAMES) == len(set(TASK_NAMES)) == 37 and set(DURATION_RANGES) == set(TASK_NAMES)
    for job in jobs:
        assert list(job) == ["id", "name", "status", "created_at", "ended_at", "progress", "instance_id",
                             "instance_name", "fail_reason"]
        assert all(isinstance(value, str) for value in job.values()), job
        assert UUID4.fullmatch(job["id"]) and job["name"] in TASK_NAMES
        assert re.fullmatch(r"[0-9a-f]{32}in02", job["instance_id"])
        assert re.fullmatch(r"dds-[0-9a-f]{4}-[a-z]+", job["instance_name"])
        assert API_TIME.fullmatch(job["created_at"])
        if job["status"] == "Running":
            assert re.fullmatch(r"[1-9][0-9]?%", job["progress"]) and job["ended_at"] == job["fail_reason"] == ""
        else:
            assert job["status"] in ("Completed", "Failed") and job["progress"] == ""
            assert job["ended_at"][-5:] == job["created_at"][-5:], "one job renders in one offset"
            duration = parse_time(job["ended_at"]) - parse_time(job["created_at"])
            assert timedelta(seconds=3) <= duration <= timedelta(hours=1)
            assert (job["fail_reason"] != "") == (job["status"] == "Failed")
    failed = sum(job["status"] == "Failed" for job in jobs)
    assert 0.01 < failed / len(jobs) < 0.12
    assert {job["created_at"][-5:] for job in jobs} == {"+0000", "+0800", "-0500"}
    assert len({job["name"] for job in jobs}) > 20 and 3 < len({job["instance_id"] for job in jobs}) <= 12


TOO_LONG = {"start_time": "2026-10-01T00:00:00Z", "end_time": "2026-10-31T00:00:01Z"}


@pytest.mark.parametrize("params, fragment", [
    ({"start_time": None}, "start_time: it is required"),
    ({"end_time": None}, "end_time: it is required"),
    ({"start_time": ""}, "start_time: it is required"),
    ({"start_time": "2026-11-20 00:00:00Z"}, "start_time"),
    ({"start_time": "2026-11-20T00:00:00"}, "start_time"),
    ({"start_time": "2026-11-20T00:00:00.000Z"}, "start_time"),
    ({"end_time": "2026-13-01T00:00:00Z"}, "end_time"),
    ({"end_time": "2026-11-20T00:00:00+08"}, "end_time"),
    ({"start_time": "2026-11-20T00:00:00Z", "end_time": "2026-11-20T00:00:00Z"}, "later than start_time"),
    ({"start_time": "2026-11-20T00:00:00Z", "end_time": "2026-11-19T00:00:00Z"}, "later than start_time"),
    (TOO_LONG, "30 days"),
    ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "-1"}, "limit"),
    ({"limit": "1.5"}, "limit"), ({"offset": "-1"}, "offset"), ({"offset": "x"}, "offset"),
    ({"offset": "+5"}, "offset"), ({"offset": "9" * 5000}, "offset"),
])
def test_bad_query_parameters_get_400(sim, params, fragment):
    window = {"start_time": "2026-11-19T00:00:00Z", "end_time": "2026-11-20T00:00:00Z", **params}
    response = requests.get(f"{sim.url}/v3.1/{sim.project_id}/jobs", headers=AUTH, timeout=10,
                            params={key: value for key, value in window.items() if value is not None})
    assert_api_error(response, 400, "DBS.200001", fragment)


@pytest.mark.parametrize("start, end, hours", [
    ("2026-11-19T20:00:00%2B0800", "2026-11-20T20:00:00%2B0800", 24),
    ("2026-11-19T20:00:00%2B08:00", "2026-11-20T07:00:00-05:00", 24),
    ("2026-11-20T06:00:00-0500", "2026-11-20T12:00:00Z", 1),
    ("2026-10-21T12:00:00Z", "2026-11-20T12:00:00Z", 30 * 24),  # the longest span allowed
])
def test_accepted_time_formats(sim, start, end, hours):
    response = requests.get(f"{sim.url}/v3.1/{sim.project_id}/jobs?start_time={start}&end_time={end}",
                            headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    expected = sim.store.visible_jobs(sim.project_id, NOW - timedelta(hours=hours), NOW)
    assert response.json()["total_count"] == len(expected) > 0
    assert response.json()["jobs"] == expected[:100]


def test_a_bare_plus_in_the_query_string_is_a_space_and_refused(sim):
    raw = "start_time=2026-11-19T20:00:00+0800&end_time=2026-11-20T20:00:00%2B0800"
    response = requests.get(f"{sim.url}/v3.1/{sim.project_id}/jobs?{raw}", headers=AUTH, timeout=10)
    assert_api_error(response, 400, "DBS.200001", "'2026-11-19T20:00:00 0800'")
    encoded = requests.get(f"{sim.url}/v3.1/{sim.project_id}/jobs?{raw.replace('+', quote('+'))}",
                           headers=AUTH, timeout=10)
    assert encoded.status_code == 200


def test_authentication_and_routing_errors(sim):
    assert_api_error(get_jobs(sim, headers={}), 401, "APIG.0301", "Incorrect IAM authentication information")
    wrong = get_jobs(sim, headers={"X-Auth-Token": "not-the-token"})
    assert_api_error(wrong, 401, "APIG.0301", "Incorrect IAM authentication information")
    assert "not-the-token" not in wrong.text and TOKEN not in wrong.text
    assert_api_error(get_jobs(sim, project_id="ffffffffffffffffffffffffffffffff"), 403, "DBS.200011")
    assert_api_error(requests.get(f"{sim.url}/v3/{sim.project_id}/jobs", headers=AUTH, timeout=10), 404,
                     "APIG.0101")
    assert_api_error(requests.post(f"{sim.url}/v3.1/{sim.project_id}/jobs", headers=AUTH, timeout=10), 405,
                     "APIG.0101")
    with DdsSimulator(config(token=None), port=0) as open_sim:
        assert get_jobs(open_sim, headers={}).status_code == 200


def test_secrets_stay_out_of_reprs(sim):
    get_jobs(sim)
    for text in (repr(sim.config), repr(sim.authenticator), repr(sim.requests), repr(sim)):
        assert TOKEN not in text
    assert sim.requests[-1].headers["X-Auth-Token"] == TOKEN, "the value stays inspectable"


def test_window_is_inclusive_at_both_ends(sim):
    job = all_pages(sim)[50]
    created = parse_time(job["created_at"])

    def ids(start: datetime, end: datetime) -> set[str]:
        return {found["id"] for found in all_pages(sim, start_time=api_time(start), end_time=api_time(end))}

    assert job["id"] in ids(created, created + timedelta(hours=1))
    assert job["id"] in ids(created - timedelta(hours=1), created)
    assert job["id"] not in ids(created + timedelta(seconds=1), created + timedelta(hours=1))
    assert job["id"] not in ids(created - timedelta(hours=1), created - timedelta(seconds=1))


def test_jobs_older_than_the_retention_are_never_returned(sim):
    cutoff = NOW - timedelta(days=30)
    old_window = all_pages(sim, start_time=api_time(NOW - timedelta(days=39)),
                           end_time=api_time(NOW - timedelta(days=29)))
    assert old_window and min(parse_time(job["created_at"]) for job in old_window) >= cutoff
    assert sim.store.job_count(sim.project_id) > len(sim.store.visible_jobs(sim.project_id)) + 300
    oldest = min(sim.store.visible_jobs(sim.project_id), key=lambda job: parse_time(job["created_at"]))
    sim.store.advance(timedelta(days=1))
    assert oldest["id"] not in {job["id"] for job in all_pages(sim, start_time=api_time(cutoff - timedelta(days=1)),
                                                               end_time=api_time(cutoff + timedelta(days=2)))}


def test_filters_match_exactly(sim):
    sim.store.add_jobs(2)
    everything = sim.store.visible_jobs(sim.project_id, NOW - timedelta(days=30), NOW)
    for key, value in (("status", "Failed"), ("status", "Running"), ("name", "MongodbSnapshotBackup"),
                       ("id", everything[7]["id"])):
        expected = [job for job in everything if job[key] == value]
        assert expected and all_pages(sim, limit=100, **{key: value}) == expected
    nothing = get_jobs(sim, status="Paused", limit=5)
    assert nothing.status_code == 200 and nothing.json() == {"jobs": [], "total_count": 0}


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_pages_concatenate_to_the_visible_jobs_in_order(order):
    with DdsSimulator(config(order=order), port=0) as sim, requests.Session() as session:
        expected = sim.store.visible_jobs(sim.project_id, NOW - timedelta(days=30), NOW)
        first = get_jobs(sim, session=session, limit=7).json()
        assert first["total_count"] == len(expected) and len(first["jobs"]) == 7
        paged = all_pages(sim, limit=7, session=session)
        assert paged == expected and len({job["id"] for job in paged}) == len(paged)
        keys = [(parse_time(job["created_at"]), job["id"]) for job in paged]
        assert keys == sorted(keys, reverse=order == "newest_first")
        beyond = get_jobs(sim, session=session, offset=len(expected) + 10).json()
        assert beyond == {"jobs": [], "total_count": len(expected)}


def test_total_count_can_be_omitted():
    with DdsSimulator(config(include_total_count=False), port=0) as sim:
        body = get_jobs(sim, limit=3).json()
        assert list(body) == ["jobs"] and len(body["jobs"]) == 3


@pytest.mark.parametrize("style, expected", [("empty", ""), ("null", None), ("missing", "absent")])
def test_ended_at_of_running_jobs(style, expected):
    with DdsSimulator(config(running_ended_at=style), port=0) as sim:
        ids = set(sim.store.add_jobs(3))
        running = [job for job in all_pages(sim) if job["id"] in ids]
        assert len(running) == 3 and {job["status"] for job in running} == {"Running"}
        assert all(job.get("ended_at", "absent") == expected for job in running)
        assert all(job["progress"] == "1%" for job in running), "created this very second"


def test_advance_finishes_running_jobs_and_reveals_new_ones():
    with DdsSimulator(config(jobs_per_day=2000), port=0) as sim:
        ids = set(sim.store.add_jobs(4))
        sim.store.advance(timedelta(seconds=2))
        midway = [job for job in all_pages(sim, status="Running") if job["id"] in ids]
        assert len(midway) == 4 and all(job["progress"].endswith("%") for job in midway)
        ahead = {"start_time": api_time(NOW + timedelta(seconds=3)), "end_time": api_time(NOW + timedelta(hours=2))}
        assert get_jobs(sim, **ahead).json()["total_count"] == 0
        sim.store.advance(timedelta(hours=2))
        assert sim.store.now == NOW + timedelta(hours=2, seconds=2)
        appeared = get_jobs(sim, **ahead, limit=100).json()
        assert appeared["total_count"] > 50
        later = [job for job in all_pages(sim, start_time=api_time(NOW), end_time=api_time(NOW + timedelta(seconds=1)))
                 if job["id"] in ids]
        assert {job["status"] for job in later} <= {"Completed", "Failed"} and len(later) == 4
        assert all(job["progress"] == "" and parse_time(job["ended_at"]) > NOW for job in later)


def test_complete_running_ends_every_running_job_now(sim):
    ids = set(sim.store.add_jobs(3))
    sim.store.advance(timedelta(seconds=1))
    ended = sim.store.complete_running()
    assert ids <= set(ended)
    assert get_jobs(sim, status="Running").json()["total_count"] == 0
    for job in (job for job in all_pages(sim) if job["id"] in ids):
        assert job["status"] in ("Completed", "Failed") and parse_time(job["ended_at"]) == sim.store.now


def test_jobs_added_while_paging_shift_newest_first_pages(sim):
    with requests.Session() as session:
        first = get_jobs(sim, session=session, limit=10).json()
        added = sim.store.add_jobs(5)
        second = get_jobs(sim, session=session, limit=10, offset=10).json()
    assert second["total_count"] == first["total_count"] + 5
    assert [job["id"] for job in second["jobs"][:5]] == [job["id"] for job in first["jobs"][5:]]
    assert not set(added) & {job["id"] for job in first["jobs"] + second["jobs"]}


def fault_answer(sim, kind, **params):
    sim.faults.inject(kind, **params)
    faulted = get_jobs(sim, limit=20)
    assert sim.requests[-1].fault == kind
    return faulted


@pytest.mark.parametrize("kind, status", [("429", 429), ("429_no_retry_after", 429), ("500", 500)])
def test_json_error_faults(sim, kind, status):
    response = fault_answer(sim, kind, retry_after=3)
    assert response.status_code == status and UUID4.fullmatch(response.headers["X-Request-Id"])
    assert response.headers.get("Retry-After") == ("3" if kind == "429" else None)
    body = response.json()
    if status == 429:
        assert body["error_code"] == "APIG.0308" and "policy user over ratelimit" in body["error_msg"]
    else:
        assert body["error_code"].startswith("DBS.")
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
    assert set(FAULT_KINDS) == {"429", "429_no_retry_after", "500", "502_html", "drop", "truncate", "slow",
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cli_options_make_the_config():
    import argparse
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = config_from_args(parser.parse_args([]))
    assert (defaults.seed, defaults.token, defaults.jobs_per_day, defaults.include_total_count) == (7, TOKEN, 40, True)
    custom = config_from_args(parser.parse_args(["--seed", "3", "--latency-ms", "250", "--no-total-count",
                                                 "--project-id", "p1", "--project-id", "p2", "--token", ""]))
    assert (custom.seed, custom.latency_s, custom.include_total_count, custom.project_ids, custom.token) == (
        3, 0.25, False, ("p1", "p2"), None)
    with pytest.raises(ValueError, match="--latency-ms"):
        config_from_args(parser.parse_args(["--latency-ms", "-5"]))


def test_cli_serves_until_interrupted_and_its_curl_example_works():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pipeline.simulator.cli", "--port", str(port),
                                "--jobs-per-day", "5", "--token", "cli-token"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        assert f"http://127.0.0.1:{port}" in lines[0] and "cli-token" in lines[2]
        example = re.search(r"'(http://\S+)'", lines[4])[1]
        assert "%2B0000" in example and "-H 'X-Auth-Token: cli-token'" in lines[4]
        answer = requests.get(example, headers={"X-Auth-Token": "cli-token"}, timeout=10)
        assert answer.status_code == 200 and "total_count" in answer.json()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and "stopped" in out, err
    busy = subprocess.run([sys.executable, "-m", "pipeline.simulator.cli", "--history-days", "0"],
                          capture_output=True, text=True, timeout=30)
    assert busy.returncode == 2 and busy.stderr.count("\n") == 1 and "history_days" in busy.stderr


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
