"""Authentication over real HTTP: the client against the simulator's gateway and IAM (``pipeline.simulator.auth``).

Each method fetches a window of jobs end to end; bad credentials are refused once and never retried; IAM
tokens are cached, refreshed early, and refreshed once when revoked mid-fetch; no repr shows a secret. Which
credentials are chosen: tests/unit/test_credentials.py. `dds-tasks simulate` serves the same gateway for AK/SK and
IAM users, and its printed instructions work: tests/e2e/test_simulate_command.py.
"""

import logging
import socket
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
import requests

from pipeline.api import DdsApiError, DdsTaskCenterClient, TimeWindow
from pipeline.api.auth import AkSkAuth, IamTokenAuth, TokenAuth
from pipeline.api.credentials import Credentials, build_auth
from pipeline.api.iam import IamError, IamTokenProvider
from pipeline.api.signer import sign_request
from pipeline.cli.main import main as dds_tasks
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.simulator.auth import SimulatorAuthenticator
from tests.support.records import fetch_jobs
from tests.support.credentials import (
    AK,
    AKSK_ENV,
    DOMAIN,
    IAM_ENV,
    PASSWORD,
    SECRETS,
    SECURITY_TOKEN,
    SK,
    STATIC_TOKEN,
    TEMP_AK,
    TEMP_SK,
    USER,
)
from tests.support.simulator_http import NOW

WINDOW = TimeWindow.for_days(date(2026, 11, 10), date(2026, 11, 14))


def make_authenticator(**overrides) -> SimulatorAuthenticator:
    return SimulatorAuthenticator(**{
        "tokens": [STATIC_TOKEN],
        "keys": {AK: SK},
        "temporary_keys": {TEMP_AK: (TEMP_SK, SECURITY_TOKEN)},
        "iam_users": {USER: (PASSWORD, DOMAIN)},
        **overrides,
    })


def start_simulator(authenticator: SimulatorAuthenticator, error_shape: str = "flat") -> DdsSimulator:
    config = SimulatorConfig(now=NOW, jobs_per_day=40, authenticator=authenticator,
                             extra_routes=authenticator.routes(), error_shape=error_shape)
    return DdsSimulator(config, port=0).start()


@pytest.fixture
def gateway(request):
    authenticator = make_authenticator()
    sim = start_simulator(authenticator, getattr(request, "param", "flat"))
    yield sim, authenticator
    sim.stop()


def env_for(method: str, sim: DdsSimulator) -> dict[str, str]:
    return {
        "token": {"DDS_AUTH_TOKEN": STATIC_TOKEN},
        "aksk": {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK},
        "aksk-temporary": {"HUAWEICLOUD_SDK_AK": TEMP_AK, "HUAWEICLOUD_SDK_SK": TEMP_SK,
                           "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN},
        "iam": {"DDS_IAM_USERNAME": USER, "DDS_IAM_PASSWORD": PASSWORD, "DDS_IAM_DOMAIN": DOMAIN,
                "DDS_IAM_ENDPOINT": sim.url},
    }[method]


def fetch(sim: DdsSimulator, auth, *, concurrency: int = 1, on_page=None) -> list[dict]:
    with DdsTaskCenterClient(sim.url, sim.project_id, auth, max_concurrency=concurrency, page_size=50) as client:
        return fetch_jobs(client, WINDOW, on_page=on_page).jobs


def jobs_route_requests(sim: DdsSimulator) -> list:
    return [recorded for recorded in sim.requests if recorded.path.endswith("/jobs")]


def iam_provider(sim: DdsSimulator, password: str = PASSWORD, **kwargs) -> IamTokenProvider:
    return IamTokenProvider(sim.url, USER, password, DOMAIN, sim.project_id, **kwargs)


def baseline_job_ids(sim: DdsSimulator, authenticator: SimulatorAuthenticator) -> set[str]:
    """The window's job ids as a static token reads them; the request log and counts are reset after."""
    ids = {job["id"] for job in fetch(sim, TokenAuth(STATIC_TOKEN))}
    sim.requests.clear()
    authenticator.accepted.clear()
    return ids


@pytest.mark.parametrize("method", ["token", "aksk", "aksk-temporary", "iam"])
def test_a_fetch_succeeds_with_each_method(gateway, method, caplog):
    sim, authenticator = gateway
    expected = baseline_job_ids(sim, authenticator)
    caplog.set_level(logging.DEBUG)
    auth, chosen = build_auth(Credentials.from_env(env_for(method, sim)), sim.project_id)

    jobs = fetch(sim, auth, concurrency=4)

    assert chosen == method.split("-")[0]
    assert {job["id"] for job in jobs} == expected and len(expected) > 100
    assert all(recorded.status in (200, 201) for recorded in sim.requests)
    assert authenticator.accepted == {chosen: len(jobs_route_requests(sim))}
    assert authenticator.issued_tokens == (1 if chosen == "iam" else 0)
    assert not any(secret in caplog.text for secret in SECRETS)


def test_signed_query_with_plus_and_spaces_reads_the_same_at_the_gateway(gateway):
    """`+0800` offsets, colons and spaces: the gateway must rebuild exactly the query that was signed."""
    sim, authenticator = gateway
    url = f"{sim.url}/v3.1/{sim.project_id}/jobs"
    params = {"start_time": "2026-11-10T08:00:00+0800", "end_time": "2026-11-14T08:00:00+0800",
              "name": "Restart Instance", "limit": 5}
    through_auth = requests.get(url, params=params, auth=AkSkAuth(AK, SK, project_id=sim.project_id), timeout=10)
    assert through_auth.status_code == 200, through_auth.text
    assert "%2B0800" in sim.requests[-1].raw_query and "Restart%20Instance" in sim.requests[-1].raw_query

    # Sent as requests encodes it, unrewritten: a `+` for the space, `%2B` for the plus.
    prepared = requests.Request("GET", url, params=params).prepare()
    headers = sign_request("GET", prepared.url, {}, None, AK, SK, project_id=sim.project_id)
    as_encoded = requests.get(prepared.url, headers=headers, timeout=10)
    assert as_encoded.status_code == 200, as_encoded.text
    assert "Restart+Instance" in sim.requests[-1].raw_query
    assert as_encoded.json() == through_auth.json()
    assert authenticator.accepted["aksk"] == 2


def test_wrong_secret_key_is_refused_once_and_not_retried(gateway):
    sim, authenticator = gateway
    with pytest.raises(DdsApiError) as caught:
        fetch(sim, AkSkAuth(AK, "SECRET-wrong-sk", project_id=sim.project_id), concurrency=4)
    assert caught.value.status == 401 and caught.value.error_code == "APIG.0301"
    assert caught.value.attempts == 1 and len(sim.requests) == 1
    assert authenticator.rejections["APIG.0301"] == 1
    assert "SECRET" not in str(caught.value) and "SECRET" not in repr(caught.value)


def test_temporary_key_without_its_security_token_is_refused(gateway):
    sim, authenticator = gateway
    with pytest.raises(DdsApiError, match="APIG.0301"):
        fetch(sim, AkSkAuth(TEMP_AK, TEMP_SK, project_id=sim.project_id))
    assert len(sim.requests) == 1


@pytest.mark.parametrize("gateway", ["flat", "nested"], indirect=True)
def test_iam_token_revoked_mid_fetch_is_refreshed_once_and_the_fetch_completes(gateway):
    # The gateway may answer {"error": {"code": "APIG.0307", ...}} (nested) as well as {"error_code": ...}.
    sim, authenticator = gateway
    expected = baseline_job_ids(sim, authenticator)
    revoked = []

    def revoke_after_first_page(page, stats) -> None:
        if not revoked:
            authenticator.revoke_all()
            revoked.append(page)

    jobs = fetch(sim, IamTokenAuth(iam_provider(sim)), on_page=revoke_after_first_page)

    assert {job["id"] for job in jobs} == expected
    assert authenticator.issued_tokens == 2
    assert authenticator.rejections == {"APIG.0307": 1}
    statuses = [recorded.status for recorded in jobs_route_requests(sim)]
    assert statuses[:2] == [200, 401] and set(statuses[2:]) == {200}
    assert authenticator.accepted == {"iam": len(statuses) - 1}


def test_concurrent_requests_rejected_with_the_same_token_fetch_one_new_token(gateway):
    sim, authenticator = gateway
    auth = IamTokenAuth(iam_provider(sim))
    url = f"{sim.url}/v3.1/{sim.project_id}/jobs"
    params = {"start_time": "2026-11-10T00:00:00Z", "end_time": "2026-11-11T00:00:00Z", "limit": 5}
    assert requests.get(url, params=params, auth=auth, timeout=10).status_code == 200
    authenticator.revoke_all()
    start = threading.Barrier(8)
    statuses = []

    def get() -> None:
        with requests.Session() as session:
            start.wait()
            statuses.append(session.get(url, params=params, auth=auth, timeout=10).status_code)

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 8
    assert authenticator.issued_tokens == 2
    # Usually all 8 are refused; a thread that starts after the refresh already carries the new token.
    assert set(authenticator.rejections) == {"APIG.0307"} and authenticator.rejections["APIG.0307"] >= 1


def test_a_token_refused_again_after_its_refresh_is_not_refreshed_twice():
    authenticator = make_authenticator(token_lifetime=timedelta(0))
    sim = start_simulator(authenticator)
    try:
        with pytest.raises(DdsApiError) as caught:
            fetch(sim, IamTokenAuth(iam_provider(sim)), concurrency=4)
    finally:
        sim.stop()
    assert caught.value.status == 401 and caught.value.error_code == "APIG.0307"
    assert authenticator.issued_tokens == 2
    assert [r.status for r in jobs_route_requests(sim)] == [401, 401]


def test_wrong_iam_password_fails_with_a_clear_message_and_one_login(gateway):
    sim, authenticator = gateway
    with pytest.raises(IamError) as caught:
        fetch(sim, IamTokenAuth(iam_provider(sim, password="SECRET-wrong-password")), concurrency=4)
    message = str(caught.value)
    assert message.startswith(f"IAM refused a token for user '{USER}' at {sim.url}/v3/auth/tokens: HTTP 401")
    assert "password is wrong" in message and "\n" not in message and "SECRET" not in message
    assert [r.path for r in sim.requests] == ["/v3/auth/tokens"]
    assert jobs_route_requests(sim) == []


def test_unreachable_iam_is_a_one_line_error_naming_iam():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = IamTokenProvider(f"http://127.0.0.1:{closed_port}", USER, PASSWORD, DOMAIN, "p1")
    with pytest.raises(IamError, match=r"^IAM token request to http://127\.0\.0\.1:\d+/v3/auth/tokens failed: "
                                        r"ConnectionError$"):
        provider.token()


def test_iam_token_is_cached_then_refreshed_within_the_margin_of_its_expiry(gateway):
    sim, authenticator = gateway
    clock = [datetime.now(timezone.utc)]
    provider = iam_provider(sim, refresh_margin=timedelta(minutes=30), clock=lambda: clock[0])

    first = provider.token()
    clock[0] += timedelta(hours=23, minutes=29)
    assert provider.token() == first and authenticator.issued_tokens == 1
    clock[0] += timedelta(minutes=2)
    second = provider.token()
    assert second != first and authenticator.issued_tokens == 2


def test_concurrent_callers_share_one_token_fetch(gateway):
    sim, authenticator = gateway
    provider = iam_provider(sim)
    start = threading.Barrier(8)
    tokens = []

    def call() -> None:
        start.wait()
        tokens.append(provider.token())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and len(tokens) == 8 and authenticator.issued_tokens == 1


def test_no_repr_or_str_shows_a_secret(gateway):
    sim, authenticator = gateway
    provider = iam_provider(sim)
    provider.token()
    everything = [
        TokenAuth(STATIC_TOKEN),
        AkSkAuth(AK, SK, project_id="p1"),
        AkSkAuth(TEMP_AK, TEMP_SK, security_token=SECURITY_TOKEN),
        IamTokenAuth(provider),
        provider,
        provider._cached,
        authenticator,
        Credentials.from_env({**AKSK_ENV, **IAM_ENV, "DDS_AUTH_TOKEN": STATIC_TOKEN,
                              "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN}),
    ]
    issued = provider._cached.value
    for thing in everything:
        for shown in (repr(thing), str(thing), f"{thing}"):
            assert not any(secret in shown for secret in (*SECRETS, issued)), shown
    assert repr(everything[0]) == "TokenAuth(token=***)"
    assert repr(everything[1]) == "AkSkAuth(ak=AKPE***, sk=***, project_id='p1')"
    assert "access_key=AKPE***" in repr(everything[-1]) and "iam_password=***" in repr(everything[-1])


# --- the simulator's verifier catches what a real gateway would ---------------------------------------------

def signed_get(sim: DdsSimulator, sk: str = SK, now: datetime | None = None) -> requests.Response:
    url = f"{sim.url}/v3.1/{sim.project_id}/jobs?start_time=2026-11-10T00%3A00%3A00Z&end_time=2026-11-14T00%3A00%3A00Z"
    headers = sign_request("GET", url, {}, None, AK, sk, project_id=sim.project_id, now=now)
    return requests.get(url, headers=headers, timeout=10)


def test_gateway_accepts_a_fresh_signature_and_refuses_a_stale_one(gateway):
    sim, _ = gateway
    assert signed_get(sim).status_code == 200
    stale = signed_get(sim, now=datetime.now(timezone.utc) - timedelta(minutes=20))
    assert stale.status_code == 401 and stale.json()["error_code"] == "APIG.0301"


def test_gateway_refuses_a_query_changed_after_signing(gateway):
    sim, _ = gateway
    url = f"{sim.url}/v3.1/{sim.project_id}/jobs?start_time=2026-11-10T00%3A00%3A00Z&end_time=2026-11-14T00%3A00%3A00Z"
    headers = sign_request("GET", url, {}, None, AK, SK, project_id=sim.project_id)
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    assert requests.get(url + "&limit=5", headers=headers, timeout=10).status_code == 401
    assert requests.get(url, headers={**headers, "X-Project-Id": "other"}, timeout=10).status_code == 401


def test_gateway_locks_a_key_after_more_than_five_bad_signatures(gateway):
    sim, authenticator = gateway
    statuses = [signed_get(sim, sk="SECRET-wrong").status_code for _ in range(6)]
    assert statuses == [401] * 6
    locked = signed_get(sim)
    assert locked.status_code == 401 and "locked" in locked.json()["error_msg"]


def test_gateway_refuses_requests_without_credentials_or_with_unknown_tokens(gateway):
    sim, authenticator = gateway
    url = f"{sim.url}/v3.1/{sim.project_id}/jobs"
    assert requests.get(url, timeout=10).json()["error_code"] == "APIG.0301"
    assert requests.get(url, headers={"X-Auth-Token": "nope"}, timeout=10).status_code == 401
    assert authenticator.rejections["APIG.0301"] == 2


# --- `dds-tasks simulate`: credential options ------------------------------------------------------------

@pytest.mark.parametrize("options,message", [
    (["--ak", AK], "--ak and --sk go together: give both or neither"),
    (["--sk", SK], "--ak and --sk go together: give both or neither"),
    (["--iam-user", USER, "--iam-password", PASSWORD],
     "--iam-user, --iam-password and --iam-domain go together: give all three or none"),
    (["--iam-user", USER, "--iam-password", PASSWORD, "--iam-domain", DOMAIN, "--iam-token-minutes", "-1"],
     "--iam-token-minutes must be >= 0, got -1.0"),
])
def test_the_simulate_command_refuses_an_incomplete_credential_set_before_serving(capsys, options, message):
    assert dds_tasks(["simulate", "--port", "0", *options]) == 2
    assert capsys.readouterr().err == f"dds-tasks simulate: {message}\n"
