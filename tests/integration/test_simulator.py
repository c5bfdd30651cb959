"""The DDS API simulator over real HTTP on loopback: data, validation, auth, paging, clock.

Faults, recording, serving and the CLI: test_simulator_serving.py (serving from the command line:
tests/e2e/test_simulate_command.py)."""

import re
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
import requests

from pipeline.simulator import TASK_NAMES, DdsSimulator
from pipeline.simulator.jobs import DURATION_RANGES
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

API_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\+0000|\+0800|-0500)")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


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
