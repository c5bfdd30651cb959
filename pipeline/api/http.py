"""One GET of the jobs list over a pooled ``requests`` session: an answer's jobs, or why the attempt failed."""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from pipeline.api.errors import Problem, one_line, parse_error_body, refused_redirect
from pipeline.api.ratelimit import RateUsage, RegionLimiter
from pipeline.api.retry import (
    BROKEN_ANSWER,
    INVALID_JSON,
    AttemptFailure,
    parse_retry_after,
    retry_kind_of_exception,
    retry_kind_of_status,
    untrusted_certificate,
)

# Request headers whose values are credentials; an error text that echoes one gets it masked.
_SECRET_HEADERS = ("x-auth-token", "authorization", "x-security-token")
USER_AGENT = "dds-task-sync/0.1"

Timeout = tuple[float, float]


@dataclass(frozen=True)
class JobsAnswer:
    """One page as the API sent it: its job records, as sent, and ``total_count`` when present."""

    jobs: list[dict]
    total_count: int | None


def encode_query(params: Mapping[str, str | int]) -> str:
    """The query string with every reserved character percent-encoded: ``+`` as ``%2B``, ``:`` as ``%3A``."""
    # A bare `+` in start_time would reach the API as a space and be refused.
    return urlencode(params, quote_via=quote, safe="")


def _mask_secrets(text: str, request: requests.PreparedRequest | None) -> str:
    if request is None:
        return text
    for name in _SECRET_HEADERS:
        value = request.headers.get(name)
        if value:
            text = text.replace(value, "***")
    return text


def _problem(
    response: requests.Response, summary: str, error_code: str | None = None, error_msg: str | None = None
) -> Problem:
    return Problem(
        summary=_mask_secrets(summary, response.request),
        status=response.status_code,
        error_code=error_code,
        error_msg=None if error_msg is None else _mask_secrets(error_msg, response.request),
        request_id=response.headers.get("X-Request-Id"),
    )


def _error_problem(response: requests.Response, body: bytes) -> Problem:
    code, msg, excerpt = parse_error_body(body)
    return _problem(response, " ".join(part for part in (code, msg) if part) or excerpt, code, msg)


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _jobs_answer(response: requests.Response, body: bytes, limit: int) -> JobsAnswer:
    """The page a 200 answer holds, or an AttemptFailure: an answer that is not the jobs list the API promises is
    a failure, never data (read as "no jobs", a null list would record an empty day as synced)."""

    def broken(what: str, kind: str = BROKEN_ANSWER) -> AttemptFailure:
        excerpt = one_line(body.decode("utf-8", "replace"), 120)
        return AttemptFailure(_problem(response, f"{what} ({len(body)} bytes): {excerpt}"), kind)

    try:
        parsed = json.loads(body)
    except ValueError:
        # A cut or garbled body is a transport hiccup in practice: worth another try.
        raise broken("body is not valid JSON", INVALID_JSON) from None
    jobs = parsed.get("jobs") if isinstance(parsed, dict) else None
    if not isinstance(jobs, list):
        code, msg, _ = parse_error_body(body)
        if code is not None:
            # An error body sent with status 200: the API's own words say more than "no jobs list".
            raise AttemptFailure(_problem(response, f"{code} {msg or ''}".strip(), code, msg), BROKEN_ANSWER)
        if not isinstance(parsed, dict):
            raise broken(f"answer is {_json_type(parsed)}, not an object")
        raise broken("answer has no jobs list" if "jobs" not in parsed else f"jobs is {_json_type(jobs)}, not a list")
    if len(jobs) > limit:
        raise broken(f"{len(jobs)} records for a limit of {limit}")
    if set(map(type, jobs)) - {dict}:
        # A record without a usable id is still an object, passed on to be rejected and counted by the normalizer;
        # one that is not an object at all means the page itself is garbled.
        raise broken("a record is not a JSON object")
    # The count is only a hint for how many pages to ask at once: anything but a whole number >= 0 is no hint.
    total = parsed.get("total_count")
    if isinstance(total, str) and total.isdigit():
        total = int(total)
    return JobsAnswer(jobs, total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None)


class JobsHttp:
    """GETs ``{endpoint}/v3.1/{project_id}/jobs`` on one session whose pool holds ``pool_size`` connections.

    urllib3 retries nothing and redirects are not followed (they would carry the token or signature elsewhere):
    any 3xx is an error naming ``endpoint_setting``, the setting to correct, and is not retried. The retry policy
    above decides everything else. With a ``limiter``, each request waits for its leave and reports how it went
    (the region's pace and window adapt to it).
    """

    def __init__(
        self,
        endpoint: str,
        project_id: str,
        auth: AuthBase | None,
        *,
        timeout: Timeout,
        verify: bool | str,
        pool_size: int,
        limiter: RegionLimiter | None = None,
        endpoint_setting: str = "DDS_ENDPOINT",
    ) -> None:
        self.url = f"{endpoint}/v3.1/{quote(project_id, safe='')}/jobs"
        self._endpoint_setting = endpoint_setting
        # Preparing a request parses and re-encodes its URL (a seventh of the client's CPU per page): the jobs URL is
        # prepared once, here, and each request appends its query, already in the form preparing it would give.
        self._prepared_url = requests.Request("GET", self.url).prepare().url
        self._auth = auth
        self._timeout = timeout
        self._limiter = limiter
        self._session = requests.Session()
        # requests re-reads the proxy and CA variables of the environment on every request (a fifth of the
        # client's CPU per page): read them once here instead, the way requests itself would.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(self.url))
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._verify = verify
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(
            {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": USER_AGENT}
        )

    def get_jobs(self, params: Mapping[str, str | int], usage: RateUsage | None = None) -> JobsAnswer:
        """One attempt; raises AttemptFailure (with a retry kind when a retry may help). ``usage`` hears what the
        limiter did for it."""
        if self._limiter is None:
            return self._send(params)
        permit = self._limiter.acquire(usage)
        try:
            answer = self._send(params)
        except AttemptFailure as failure:
            self._limiter.failed(permit, failure.kind, failure.problem.error_msg, usage)
            raise
        except BaseException:
            self._limiter.failed(permit, None, None, usage)
            raise
        self._limiter.answered(permit)
        return answer

    def _send(self, params: Mapping[str, str | int]) -> JobsAnswer:
        try:
            # Prepared here and sent as is: Session.get would merge session settings into every request, a third
            # of the client's CPU per page, and the session holds nothing to merge (no cookies, no environment).
            response = self._session.send(
                self.prepare(params), timeout=self._timeout, verify=self._verify, allow_redirects=False
            )
            body = response.content
        except requests.RequestException as exc:
            kind = retry_kind_of_exception(exc)
            refused = untrusted_certificate(exc)
            summary = (
                f"TLS certificate not trusted ({refused}): set DDS_CA_BUNDLE to the CA's PEM file"
                if refused is not None
                else f"{type(exc).__name__}: {one_line(str(exc), 160)}"
            )
            raise AttemptFailure(Problem(_mask_secrets(summary, exc.request)), kind) from None
        if response.status_code == 200:
            return _jobs_answer(response, body, int(params["limit"]))
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location")
            raise AttemptFailure(_problem(response, refused_redirect(location, self.url, self._endpoint_setting)))
        raise AttemptFailure(
            _error_problem(response, body),
            retry_kind_of_status(response.status_code),
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def prepare(self, params: Mapping[str, str | int]) -> requests.PreparedRequest:
        """The request for ``params``, as ``requests.Request("GET", url, headers=..., auth=...).prepare()`` builds it
        but for parsing the URL again (see __init__)."""
        request = requests.PreparedRequest()
        request.prepare_method("GET")
        request.url = f"{self._prepared_url}?{encode_query(params)}"
        request.prepare_headers(self._session.headers)
        request.prepare_cookies(None)
        request.prepare_body(None, None)
        request.prepare_auth(self._auth, request.url)
        return request

    def close(self) -> None:
        self._session.close()
