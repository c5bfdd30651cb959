"""No request carrying a credential follows a redirect: the IAM login and the DDS API, over real HTTP.

Each case starts two simulators on loopback: the *origin* (the configured endpoint) answers every request of the
route with a 3xx whose Location names the *final* server; the final one would accept the credentials (it serves
the same gateway and IAM) and must receive nothing. The error is one line naming the status, the Location's host
only (its path and query, and the answer's body, may hold secrets) and the setting to correct; it is not retried.
"""

import re
from datetime import date

import pytest

from pipeline.api import DdsApiError, DdsTaskCenterClient, TimeWindow
from pipeline.api.auth import AkSkAuth, IamTokenAuth, TokenAuth
from pipeline.api.iam import IamError, IamTokenProvider
from pipeline.api.retry import RetryPolicy
from pipeline.defs.resources import DdsTaskCenterResource
from pipeline.simulator import DdsSimulator, RequestInfo, Response, SimulatorConfig
from pipeline.simulator.auth import SimulatorAuthenticator
from pipeline.targets import Target
from tests.support.records import fetch_jobs
from tests.support.credentials import AK, DOMAIN, PASSWORD, SECRETS, SK, STATIC_TOKEN, USER
from tests.support.simulator_http import NOW

REDIRECTS = (301, 302, 303, 307, 308)
WINDOW = TimeWindow.for_days(date(2026, 11, 10), date(2026, 11, 14))
# What the Location's path and query and the answer's body carry: no error text may show it.
LOCATION_SECRET = "SECRET-in-location"
BODY_SECRET = "SECRET-in-body"


def redirect_to(final: DdsSimulator, status: int):
    """A route handler answering ``status`` with a Location on ``final`` (same path, a secret added to the query)."""

    def answer(sim: DdsSimulator, request: RequestInfo) -> Response:
        query = f"{request.raw_query}&session={LOCATION_SECRET}" if request.raw_query else f"session={LOCATION_SECRET}"
        location = f"{final.url}{request.path}/{LOCATION_SECRET}?{query}"
        return Response(status, {"Location": location, "Content-Type": "application/json"},
                        f'{{"note": "{BODY_SECRET}"}}'.encode())

    return answer


def simulator(*routes) -> DdsSimulator:
    """A simulator whose gateway and IAM accept the test's credentials, with ``routes`` taking precedence."""
    authenticator = SimulatorAuthenticator(tokens=[STATIC_TOKEN], keys={AK: SK}, iam_users={USER: (PASSWORD, DOMAIN)})
    config = SimulatorConfig(now=NOW, jobs_per_day=40, authenticator=authenticator,
                             extra_routes=[*routes, *authenticator.routes()])
    return DdsSimulator(config, port=0).start()


@pytest.fixture
def servers(request):
    """(origin, final, status): the origin redirects the route of ``request.param`` = (method, pattern, status)."""
    method, pattern, status = request.param
    final = simulator()
    origin = simulator((method, pattern, redirect_to(final, status), False))
    yield origin, final, status
    origin.stop()
    final.stop()


def assert_refusal(message: str, status: int, final: DdsSimulator, setting: str) -> None:
    assert "\n" not in message
    assert f"HTTP {status}" in message
    assert f"redirect to host 127.0.0.1:{final.port} not followed" in message
    assert f"set {setting} to the final address" in message
    for secret in (*SECRETS, LOCATION_SECRET, BODY_SECRET, "session="):
        assert secret not in message, message
    # The host only: nothing of the Location's path.
    assert not re.search(rf"127\.0\.0\.1:{final.port}/", message), message


IAM_LOGIN = [("POST", r"/v3/auth/tokens", status) for status in REDIRECTS]


@pytest.mark.parametrize("servers", IAM_LOGIN, indirect=True, ids=[str(s) for s in REDIRECTS])
def test_the_iam_login_follows_no_redirect_and_names_the_status_and_host(servers):
    origin, final, status = servers
    provider = IamTokenProvider(origin.url, USER, PASSWORD, DOMAIN, origin.project_id)
    with pytest.raises(IamError) as caught:
        provider.token()
    message = str(caught.value)
    assert message.startswith(f"IAM login at {origin.url}/v3/auth/tokens answered HTTP {status}: ")
    assert_refusal(message, status, final, "DDS_IAM_ENDPOINT")
    assert [(r.method, r.path, r.status) for r in origin.requests] == [("POST", "/v3/auth/tokens", status)]
    assert len(final.requests) == 0


API_JOBS = [("GET", r"/v3\.1/[^/]+/jobs", status) for status in REDIRECTS]


def api_auth(kind: str, origin: DdsSimulator):
    if kind == "token":
        return TokenAuth(STATIC_TOKEN)
    if kind == "aksk":
        return AkSkAuth(AK, SK, project_id=origin.project_id)
    # The IAM login itself is served by the origin; only its jobs route redirects.
    return IamTokenAuth(IamTokenProvider(origin.url, USER, PASSWORD, DOMAIN, origin.project_id))


@pytest.mark.parametrize("kind", ["token", "aksk", "iam"])
@pytest.mark.parametrize("servers", API_JOBS, indirect=True, ids=[str(s) for s in REDIRECTS])
def test_a_credentialed_api_request_follows_no_redirect_and_is_not_retried(servers, kind):
    origin, final, status = servers
    retry = RetryPolicy(base_delay=0.01, max_delay=0.01, total_budget=5)
    with DdsTaskCenterClient(origin.url, origin.project_id, api_auth(kind, origin), max_concurrency=1,
                             retry=retry) as client, pytest.raises(DdsApiError) as caught:
        fetch_jobs(client, WINDOW)
    assert caught.value.status == status and caught.value.attempts == 1
    assert_refusal(str(caught.value), status, final, "DDS_ENDPOINT")
    jobs_requests = [r for r in origin.requests if r.path.endswith("/jobs")]
    assert [r.status for r in jobs_requests] == [status]
    assert len(final.requests) == 0


@pytest.mark.parametrize("servers", [API_JOBS[-1]], indirect=True, ids=["308"])
def test_a_targets_redirect_names_the_targets_endpoint(servers):
    origin, final, status = servers
    target = Target(name="sg-prod", region="ap-southeast-1", project_id=origin.project_id, endpoint=origin.url)
    resource = DdsTaskCenterResource(auth_token=STATIC_TOKEN, retry_max_attempts=3)
    client, _ = resource.client(target)
    with client, pytest.raises(DdsApiError) as caught:
        fetch_jobs(client, WINDOW)
    assert_refusal(str(caught.value), status, final, "the endpoint of target sg-prod in DDS_TARGETS_FILE")
    assert len(final.requests) == 0


def test_a_relative_location_names_the_origins_own_host():
    def relative(sim: DdsSimulator, request: RequestInfo) -> Response:
        return Response(307, {"Location": f"/elsewhere?{LOCATION_SECRET}"}, b"")

    origin = simulator(("POST", r"/v3/auth/tokens", relative, False))
    port = origin.port
    try:
        with pytest.raises(IamError) as caught:
            IamTokenProvider(origin.url, USER, PASSWORD, DOMAIN, origin.project_id).token()
    finally:
        origin.stop()
    assert f"redirect to host 127.0.0.1:{port} not followed" in str(caught.value)
    assert LOCATION_SECRET not in str(caught.value) and len(origin.requests) == 1
