"""The request rate around the client: the simulator's gateway quota, and DDS_MAX_RATE and the targets file's
``max_rate`` from settings to client. Whole Dagster runs under a quota: tests/e2e/test_ratelimit_runs.py."""

import time

import pytest
import requests

from pipeline.api import DdsTaskCenterClient
from pipeline.defs.resources import DdsTaskCenterResource
from pipeline.config import ConfigError, Deployment
from pipeline.simulator import DdsSimulator, RequestInfo, SimulatorConfig
from pipeline.cli.simulate import add_arguments, config_from_args
from pipeline.simulator.ratelimit import RateSchedule, UserRateLimit
from pipeline.targets import describe_targets, load_targets
from tests.support.simulator_http import NOW, get_jobs

THROTTLED_MESSAGE = "policy user over ratelimit,limit:5,time:1 second"


def test_the_gateway_quota_is_a_bucket_per_user_answered_429_in_the_providers_words():
    with DdsSimulator(SimulatorConfig(now=NOW, token=None, rate_limit=5), port=0) as sim:
        alice = [get_jobs(sim, headers={"X-Auth-Token": "alice"}, limit=1) for _ in range(10)]
        # The bucket holds one second of quota: the first five pass; the rest come faster than it refills.
        assert [response.status_code for response in alice[:5]] == [200] * 5
        refused = [response for response in alice[5:] if response.status_code == 429]
        assert len(refused) >= 3 and all(response.status_code in (200, 429) for response in alice)
        body = refused[0].json()
        assert body["error_code"] == "APIG.0308" and THROTTLED_MESSAGE in body["error_msg"]
        assert int(refused[0].headers["Retry-After"]) >= 1
        # Another user has a bucket of their own; a signed request counts against its access key.
        assert get_jobs(sim, headers={"X-Auth-Token": "bob"}, limit=1).status_code == 200
        signed = {"Authorization": "SDK-HMAC-SHA256 Access=AKID1, SignedHeaders=host, Signature=" + "0" * 64}
        assert get_jobs(sim, headers=signed, limit=1).status_code == 200
        # The log tells a throttled answer from an injected fault.
        assert [(r.status, r.fault) for r in sim.requests].count((429, None)) == len(refused)


def test_a_quota_schedule_changes_the_limit_and_the_bucket_with_it():
    schedule = RateSchedule.of("0:50,10:5,20:50")
    assert [schedule.limit_at(s) for s in (0, 9.9, 10, 19.9, 20, 1e6)] == [50, 50, 5, 5, 50, 50]
    clock = [100.0]
    gateway = UserRateLimit(schedule, clock=lambda: clock[0])
    request = RequestInfo("GET", "/v3.1/p/jobs", "", {}, {"X-Auth-Token": "t"}, b"")
    assert sum(gateway.check(request) is None for _ in range(60)) == 50
    clock[0] += 10.0  # the quota falls to 5/s: a bucket that refilled to 50 holds no more than 5 now
    assert sum(gateway.check(request) is None for _ in range(20)) == 5
    answer = gateway.check(request)
    assert answer.status == 429 and b"limit:5,time:1 second" in answer.body and answer.headers["Retry-After"] == "1"


@pytest.mark.parametrize("spec", [0, -1, "fast", "5:10", "0:10,0:20", ((0, 10), (5,)), float("nan"), True])
def test_a_bad_quota_is_refused_by_the_simulator_config(spec):
    with pytest.raises(ValueError, match="rate"):
        SimulatorConfig(rate_limit=spec)


def test_the_simulate_command_takes_a_quota_or_a_schedule():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--rate-limit", "10"])).rate_limit == ((0.0, 10.0),)
    scheduled = config_from_args(parser.parse_args(["--rate-limit-schedule", "0:50,10:5"]))
    assert scheduled.rate_limit == ((0.0, 50.0), (10.0, 5.0))
    assert config_from_args(parser.parse_args([])).rate_limit is None


TARGETS = """
regions:
  ap-southeast-1: {max_rate: 10}
targets:
  - {name: sg-prod, region: ap-southeast-1, project_id: proj-sg, endpoint: "http://127.0.0.1:9"}
  - {name: sg-test, region: ap-southeast-1, project_id: proj-sg-test, endpoint: "http://127.0.0.1:9"}
  - {name: eu, region: eu-west-101, project_id: proj-eu, endpoint: "http://127.0.0.1:9"}
"""


def test_max_rate_goes_from_the_environment_and_the_targets_file_to_one_limiter_per_region(tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text(TARGETS)
    env = {"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_TARGETS_FILE": str(path), "DDS_MAX_RATE": "2.5"}
    settings = Deployment.from_env(env)
    assert settings.max_rate == 2.5 and Deployment.from_env({"DDS_DATA_DIR": str(tmp_path)}).max_rate is None
    sg_prod, sg_test, eu = settings.targets
    assert (sg_prod.max_rate, sg_test.max_rate, eu.max_rate) == (10.0, 10.0, None)
    rows = describe_targets(settings.targets, settings.max_concurrency, {}, settings.max_rate)
    assert [row["max_rate"] for row in rows] == ["10/s", "10/s", "2.5/s"]
    api = DdsTaskCenterResource(auth_token="a-token", max_rate=settings.max_rate)
    (prod, _), (test, _), (europe, _) = (api.client(target) for target in settings.targets)
    # The region's ceiling over DDS_MAX_RATE; both targets of the region pace through one limiter.
    assert (prod.max_rate, test.max_rate, europe.max_rate) == (10.0, 10.0, 2.5)
    assert prod.limiter is test.limiter and europe.limiter is not prod.limiter and prod.limiter.rate == 10.0
    # A later client of the region without a ceiling lifts it: nothing was learned, so no pace is left.
    DdsTaskCenterClient("http://127.0.0.1:9", "proj-sg", region="ap-southeast-1").close()
    assert prod.limiter.rate is None
    with pytest.raises(ConfigError, match=r"^DDS_MAX_RATE=0\.0 is not a number of requests a second above 0"):
        no_rate = DdsTaskCenterResource(project_id="p", endpoint="http://127.0.0.1:9", auth_token="t", max_rate=0)
        no_rate.project_client()


def test_a_bad_max_rate_in_the_targets_file_names_the_region(tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text(TARGETS.replace("max_rate: 10", "max_rate: fast"))
    with pytest.raises(ConfigError) as caught:
        load_targets(path)
    assert "region 'ap-southeast-1': max_rate='fast' is not a number of requests a second" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_simulator_log_stamps_each_request_on_arrival():
    with DdsSimulator(SimulatorConfig(now=NOW, token="t"), port=0) as sim:
        before = time.monotonic()
        for _ in range(3):
            requests.get(f"{sim.url}/v3.1/{sim.project_id}/jobs", headers={"X-Auth-Token": "t"}, timeout=5)
        stamps = [request.received_at for request in sim.requests]
        assert len(stamps) == 3 and before <= stamps[0] <= stamps[1] <= stamps[2] <= time.monotonic()
