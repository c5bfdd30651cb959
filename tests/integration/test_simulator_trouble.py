"""The simulator's answers the API should never give (pipeline/simulator/answers.py) and its outages
(pipeline/simulator/outages.py), over real HTTP on loopback: what each answers, for how long, and how it is set
from the configuration and `dds-tasks simulate`."""

import argparse
import json
import time
from collections import Counter

import pytest
import requests

from pipeline.simulator import DdsSimulator
from pipeline.simulator.answers import BROKEN_ANSWERS, DEGRADATIONS, UNREADABLE_TIME
from pipeline.cli.simulate import add_arguments, config_from_args, trouble_text
from pipeline.simulator.outages import STORM_MIX
from tests.support.simulator_http import all_pages, config, get_jobs


def test_broken_answers_of_every_kind(sim):
    whole = get_jobs(sim, limit=20).json()
    assert len(whole["jobs"]) == 20
    answers = {}
    for kind in BROKEN_ANSWERS:
        sim.answers.break_answers(kind, times=1)
        answer = get_jobs(sim, limit=20)
        assert answer.status_code == 200
        answers[kind] = answer.json()
    assert answers["null_jobs"] == {"jobs": None, "total_count": whole["total_count"]}
    assert answers["jobs_not_list"]["jobs"] == {job["id"]: job for job in whole["jobs"]}
    assert [json.loads(text) for text in answers["records_not_objects"]["jobs"]] == whole["jobs"]
    overlong = answers["overlong_page"]["jobs"]
    assert len(overlong) > 20 and overlong[:20] == whole["jobs"]
    # Each kind was for one answer only: the next is whole again.
    assert get_jobs(sim, limit=20).json() == whole


def test_broken_answers_last_until_told_otherwise_and_pad_a_short_page(sim):
    sim.answers.break_answers("overlong_page")
    total = get_jobs(sim, limit=1).json()["total_count"]
    last_page = get_jobs(sim, offset=total - 3, limit=20).json()["jobs"]
    assert len(last_page) == 21 and len({job["id"] for job in last_page}) == 3
    assert get_jobs(sim, offset=total, limit=20).json()["jobs"] == []  # nothing to pad an empty page with
    sim.answers.break_answers("records_not_objects")
    assert get_jobs(sim, offset=total, limit=20).json()["jobs"] == [""]
    sim.answers.break_answers(None)
    assert len(get_jobs(sim, limit=20).json()["jobs"]) == 20


def test_a_reported_total_count_replaces_the_true_one_and_nothing_else():
    with DdsSimulator(config(reported_total_count=10_000_000), port=0) as sim:
        jobs = all_pages(sim)
        assert get_jobs(sim).json()["total_count"] == 10_000_000
        sim.answers.report_total_count(None)
        assert get_jobs(sim).json()["total_count"] == len(jobs) > 800


def test_degraded_records_lack_a_field_or_carry_an_unreadable_end_the_same_way_every_time():
    with DdsSimulator(config(degraded_fraction=0.3), port=0) as sim, DdsSimulator(config(), port=0) as clean:
        served = {job["id"]: job for job in all_pages(sim)}
        again = {job["id"]: job for job in all_pages(sim, limit=7)}
        truth = {job["id"]: job for job in all_pages(clean)}
        assert served == again and served.keys() == truth.keys()
        kinds = Counter()
        for job_id, job in served.items():
            degradation = sim.answers.degradation_of(job_id)
            kinds[degradation] += 1
            if degradation is None:
                assert job == truth[job_id]
            elif degradation == "ended_at_not_a_time":
                assert job == {**truth[job_id], "ended_at": UNREADABLE_TIME}
            else:
                missing = degradation.removeprefix("missing_")
                assert missing in truth[job_id] and job == {k: v for k, v in truth[job_id].items() if k != missing}
        assert set(kinds) == {None, *DEGRADATIONS}
        assert 0.25 < 1 - kinds[None] / len(served) < 0.35
        # The store's own view stays the truth.
        assert {job["id"]: job for job in sim.store.visible_jobs(sim.project_id)} == {
            job["id"]: job for job in clean.store.visible_jobs(clean.project_id)}
        sim.answers.degrade(1.0, seed=4, kinds=("missing_status",))
        assert all("status" not in job for job in all_pages(sim))
        sim.answers.degrade(0.0)
        assert {job["id"]: job for job in all_pages(sim)} == truth


def test_errors_in_the_nested_shape(sim):
    sim.answers.shape_errors("nested")
    refused = get_jobs(sim, headers={"X-Auth-Token": "wrong"})
    assert refused.status_code == 401
    body = refused.json()
    assert body == {"error": {"code": "APIG.0301", "message": body["error"]["message"]}} and body["error"]["message"]
    assert get_jobs(sim, limit=0).json()["error"]["code"] == "DBS.200001"
    sim.answers.shape_errors("flat")
    assert get_jobs(sim, limit=0).json()["error_code"] == "DBS.200001"


def test_down_for_a_number_of_requests_then_up(sim):
    sim.outages.down(requests=3, status=500)
    assert [get_jobs(sim).status_code for _ in range(4)] == [500, 500, 500, 200]
    sim.outages.down(requests=2)
    answers = [get_jobs(sim) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200] and answers[0].json()["error_code"] == "APIG.0202"
    assert [r.fault for r in sim.requests[-3:]] == ["503", "503", None]
    assert not sim.outages.active


def test_down_for_seconds_counts_from_start_up_and_ends():
    with DdsSimulator(config(down_for_seconds=0.5), port=0) as sim:
        assert sim.outages.active and get_jobs(sim).status_code == 503
        deadline = time.monotonic() + 10
        while get_jobs(sim).status_code == 503:
            assert time.monotonic() < deadline, "the outage did not end"
            time.sleep(0.05)
        assert not sim.outages.active and get_jobs(sim).status_code == 200


def test_a_storm_fails_about_half_the_answers_in_every_way_and_stalls_now_and_then(sim):
    sim.outages.storm(requests=200, stall_seconds=0.01, stall_every=25, seed=3)
    outcomes = Counter()
    with requests.Session() as session:
        for _ in range(200):
            try:
                answer = get_jobs(sim, session=session, limit=5)
            except requests.ConnectionError:
                outcomes["reset"] += 1
                continue
            try:
                answer.json()
                outcomes[answer.status_code] += 1
            except ValueError:
                outcomes[f"{answer.status_code} not JSON"] += 1
    faults = Counter(r.fault for r in sim.requests)
    assert set(faults) == {None, "slow", *STORM_MIX}
    assert faults["slow"] == 8  # every 25th: requests 25, 50, ..., 200
    assert 0.4 < 1 - (faults[None] + faults["slow"]) / 200 < 0.6
    assert outcomes["reset"] == faults["drop"] and outcomes[429] == faults["429"]
    assert outcomes["502 not JSON"] == faults["502_html"] and outcomes["200 not JSON"] == faults["truncate"]
    assert not sim.outages.active and get_jobs(sim).status_code == 200


def test_queued_faults_come_before_an_outage(sim):
    sim.outages.down(requests=5)
    sim.faults.inject("429")
    assert [get_jobs(sim).status_code for _ in range(2)] == [429, 503]
    sim.outages.clear()
    assert get_jobs(sim).status_code == 200


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda sim: sim.answers.break_answers("null"), "broken_answer must be one of"),
        (lambda sim: sim.answers.break_answers("null_jobs", times=0), "times must be"),
        (lambda sim: sim.answers.report_total_count(-1), "reported_total_count must be"),
        (lambda sim: sim.answers.degrade(1.5), "degraded_fraction must be"),
        (lambda sim: sim.answers.degrade(0.5, kinds=("missing_id",)), "kinds must be"),
        (lambda sim: sim.answers.shape_errors("xml"), "error_shape must be"),
        (lambda sim: sim.outages.down(), "needs an end"),
        (lambda sim: sim.outages.down(seconds=5, status=502), "status must be"),
        (lambda sim: sim.outages.storm(requests=0), "requests must be"),
        (lambda sim: sim.outages.storm(seconds=5, failure_share=2), "failure_share"),
        (lambda sim: sim.outages.storm(seconds=5, stall_every=0), "stall_every"),
    ],
)
def test_bad_trouble_settings_are_refused_in_one_line(sim, call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call(sim)
    assert get_jobs(sim).status_code == 200


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"broken_answer": "nothing"}, "broken_answer"),
        ({"degraded_fraction": -0.1}, "degraded_fraction"),
        ({"down_for_seconds": 0}, "down_for_seconds"),
        ({"down_for_seconds": 5, "storm_seconds": 5}, "exclusive"),
    ],
)
def test_bad_trouble_configuration_is_refused(overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        config(**overrides)


def test_simulate_options_set_the_trouble():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plain = config_from_args(parser.parse_args([]))
    assert trouble_text(plain) is None
    args = parser.parse_args(["--broken-answer", "null_jobs", "--total-count", "10000000", "--degraded-fraction",
                              "0.25", "--nested-errors", "--storm", "90"])
    troubled = config_from_args(args)
    assert (troubled.broken_answer, troubled.reported_total_count, troubled.degraded_fraction, troubled.error_shape,
            troubled.storm_seconds, troubled.down_for_seconds) == ("null_jobs", 10_000_000, 0.25, "nested", 90, None)
    assert trouble_text(troubled) == ("  trouble:       every jobs answer broken (null_jobs); total_count always "
                                      "10000000; 25% of the jobs degraded; errors in the nested shape; "
                                      "a storm for 90 s")
    with pytest.raises(SystemExit):
        parser.parse_args(["--down-for", "5", "--storm", "5"])
    with pytest.raises(ValueError, match="degraded_fraction"):
        config_from_args(parser.parse_args(["--degraded-fraction", "2"]))
