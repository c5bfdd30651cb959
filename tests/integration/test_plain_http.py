"""Credentials never cross the network in clear text unasked: ``http://`` is accepted for DDS_ENDPOINT, a target's
endpoint and DDS_IAM_ENDPOINT only on a loopback host (the simulator) or with DDS_ALLOW_INSECURE_HTTP=1; otherwise
one line naming the setting, before any request."""

from pathlib import Path

import pytest

from pipeline.api import DdsTaskCenterClient
from pipeline.api.iam import IamTokenProvider
from pipeline.defs.resources import DdsTaskCenterResource
from pipeline.definitions import dds_api_resource
from pipeline.config import ConfigError, Deployment
from pipeline.simulator import DdsSimulator
from pipeline.targets import load_targets
from tests.support.records import fetch_jobs
from tests.support.credentials import DOMAIN, PASSWORD, USER
from tests.support.simulator_http import TOKEN, WEEK, config

# (URL, the host the refusal names)
REMOTE = [("http://dds.example.com", "dds.example.com"), ("http://10.1.2.3:8080", "10.1.2.3"),
          ("http://[2001:db8::1]:80", "2001:db8::1"), ("http://127.0.0.1.example.com", "127.0.0.1.example.com")]
LOOPBACK = ["http://127.0.0.1:9", "http://127.9.9.9", "http://localhost:8080", "http://LOCALHOST", "http://[::1]:9"]
OPT_IN = "DDS_ALLOW_INSECURE_HTTP"


@pytest.fixture
def sim():
    with DdsSimulator(config(jobs_per_day=30), port=0) as simulator:
        yield simulator


def settings(tmp_path: Path, **env: str) -> Deployment:
    return Deployment.from_env({"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_PROJECT_ID": "p1", **env})


def targets_file(tmp_path: Path, endpoint: str) -> str:
    path = tmp_path / "targets.yaml"
    path.write_text(f"targets:\n  - {{name: sg-prod, region: ap-southeast-1, project_id: p1, endpoint: '{endpoint}'}}\n")
    return str(path)


def assert_refused(message: str, setting: str, host: str) -> None:
    assert "\n" not in message and setting in message, message
    assert f"is plain http:// to {host}" in message and "set DDS_ALLOW_INSECURE_HTTP=1" in message, message


def iam_resource(sim: DdsSimulator, iam_endpoint: str, **fields) -> DdsTaskCenterResource:
    return DdsTaskCenterResource(project_id=sim.project_id, endpoint=sim.url, iam_username=USER,
                                 iam_password=PASSWORD, iam_domain=DOMAIN, iam_endpoint=iam_endpoint, **fields)


# --- refused ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, host", REMOTE)
def test_dds_endpoint_over_http_to_a_remote_host_is_refused(tmp_path, url, host):
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, DDS_ENDPOINT=url)
    assert_refused(str(caught.value), "DDS_ENDPOINT", host)


def test_a_targets_endpoint_over_http_to_a_remote_host_is_refused(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, DDS_PROJECT_ID="", DDS_TARGETS_FILE=targets_file(tmp_path, "http://dds.example.com/"))
    assert_refused(str(caught.value), "target 'sg-prod': endpoint", "dds.example.com")
    assert "DDS_TARGETS_FILE" in str(caught.value)


def test_dds_iam_endpoint_over_http_to_a_remote_host_is_refused_before_any_request(sim):
    with pytest.raises(ConfigError) as caught:
        iam_resource(sim, "http://iam.example.com").project_client()
    assert_refused(str(caught.value), "DDS_IAM_ENDPOINT", "iam.example.com")
    assert sim.requests == []


def test_a_targets_prefixed_iam_endpoint_is_named_with_its_prefix(sim, tmp_path, monkeypatch):
    for name, value in {"DDS_IAM_USERNAME": USER, "DDS_IAM_PASSWORD": PASSWORD, "DDS_IAM_DOMAIN": DOMAIN,
                        "DDS_IAM_ENDPOINT": "http://iam.example.com"}.items():
        monkeypatch.setenv(f"SG_PROD_{name}", value)
    path = tmp_path / "targets.yaml"
    path.write_text(f"targets:\n  - {{name: sg-prod, region: ap-southeast-1, project_id: {sim.project_id}, "
                    f"endpoint: '{sim.url}', credentials: SG_PROD_}}\n")
    [target] = load_targets(path)
    monkeypatch.setenv("DDS_TARGETS_FILE", str(path))
    monkeypatch.setenv("DDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DDS_PROJECT_ID", raising=False)
    # The target's prefixed variables, bound at wiring as EnvVar, resolved as a run resolves them.
    resource = dds_api_resource(Deployment.from_env()).process_config_and_initialize()
    with pytest.raises(ConfigError) as caught:
        resource.client(target)
    assert_refused(str(caught.value), "SG_PROD_DDS_IAM_ENDPOINT", "iam.example.com")
    assert sim.requests == []


def test_the_client_and_the_iam_login_refuse_a_remote_http_endpoint_themselves():
    with pytest.raises(ValueError, match="endpoint is plain http:// to dds.example.com"):
        DdsTaskCenterClient("http://dds.example.com", "p1")
    with pytest.raises(ValueError, match="IAM endpoint is plain http:// to iam.example.com"):
        IamTokenProvider("http://iam.example.com", USER, PASSWORD, DOMAIN, "p1")


@pytest.mark.parametrize("value", ["maybe", "2", "allow"])
def test_a_malformed_opt_in_is_named(tmp_path, value):
    with pytest.raises(ConfigError, match=f"^{OPT_IN}='{value}' is not 1 \\(yes\\) or 0 \\(no\\)$"):
        settings(tmp_path, DDS_ENDPOINT="https://dds.example.com", **{OPT_IN: value})


@pytest.mark.parametrize("value", ["0", "", "no"])
def test_an_opt_in_of_no_keeps_the_refusal(tmp_path, value):
    with pytest.raises(ConfigError, match="DDS_ENDPOINT is plain http://"):
        settings(tmp_path, DDS_ENDPOINT="http://dds.example.com", **{OPT_IN: value})


# --- accepted --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", LOOPBACK)
def test_http_to_a_loopback_host_is_accepted_for_each_setting(tmp_path, sim, url):
    assert settings(tmp_path, DDS_ENDPOINT=url).endpoint == url
    assert settings(tmp_path, DDS_PROJECT_ID="", DDS_TARGETS_FILE=targets_file(tmp_path, url)).targets[0].endpoint == url
    client, method = iam_resource(sim, url).project_client()
    with client:
        assert method == "iam" and sim.requests == []


def test_the_simulator_over_loopback_http_is_read_through_dds_endpoint(tmp_path, sim):
    endpoint = settings(tmp_path, DDS_ENDPOINT=sim.url, DDS_PROJECT_ID=sim.project_id).endpoint
    client, _ = DdsTaskCenterResource(project_id=sim.project_id, endpoint=endpoint, auth_token=TOKEN).project_client()
    with client:
        assert len(fetch_jobs(client, WEEK).jobs) > 100


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_the_opt_in_accepts_http_to_any_host_for_each_setting(tmp_path, sim, value):
    opted = settings(tmp_path, DDS_ENDPOINT="http://dds.example.com", **{OPT_IN: value})
    assert opted.endpoint == "http://dds.example.com" and opted.allow_insecure_http
    # The resource the definitions build carries the opt-in to the client, which checks the endpoint again.
    assert dds_api_resource(opted).allow_insecure_http
    resource = DdsTaskCenterResource(project_id="p1", endpoint=opted.endpoint, auth_token=TOKEN,
                                     allow_insecure_http=dds_api_resource(opted).allow_insecure_http)
    with resource.project_client()[0] as client:
        assert client.endpoint == "http://dds.example.com"
    with_targets = settings(tmp_path, DDS_PROJECT_ID="", DDS_TARGETS_FILE=targets_file(tmp_path, "http://10.1.2.3"),
                            **{OPT_IN: value})
    assert with_targets.targets[0].endpoint == "http://10.1.2.3"
    client, method = iam_resource(sim, "http://iam.example.com", allow_insecure_http=True).project_client()
    with client:
        assert method == "iam" and sim.requests == []


def test_https_needs_no_opt_in(tmp_path):
    assert settings(tmp_path, DDS_ENDPOINT="https://dds.example.com").endpoint == "https://dds.example.com"
    assert not settings(tmp_path).allow_insecure_http
