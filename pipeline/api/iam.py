"""IAM user tokens for unattended runs: fetched with a password login, cached, refreshed before they expire."""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests

from pipeline.api.errors import one_line, refused_redirect
from pipeline.api.windows import utc_now
from pipeline.values import checked_http_url

DEFAULT_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
TOKENS_PATH = "/v3/auth/tokens"
SUBJECT_TOKEN_HEADER = "X-Subject-Token"


class IamError(RuntimeError):
    """IAM refused or failed to issue a token; the message never holds the password."""


@dataclass(frozen=True)
class IamToken:
    """A token as issued: ``issued_at`` is our clock when it arrived, ``expires_at`` the IAM's ``expires_at``."""

    value: str
    issued_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IamToken(value=***, expires_at={self.expires_at.isoformat()})"

    __str__ = __repr__


def validated_iam_endpoint(url: str, *, insecure_http: bool = False) -> str:
    """``url`` without its trailing ``/``; ValueError unless it is an http(s) URL with a host and no user info
    (``http://`` only to loopback, unless ``insecure_http``: the login carries the password)."""
    return checked_http_url(url, "IAM endpoint", DEFAULT_IAM_ENDPOINT, insecure_http=insecure_http)


class IamTokenProvider:
    """The token of one IAM user scoped to one project, shared by concurrent requests.

    ``token()`` fetches a token when none is cached or the cached one is within ``refresh_margin`` of its
    expiry (at most half its lifetime, so short-lived tokens are not fetched on every call); only one fetch
    runs at a time. ``clock`` is the current UTC time, replaceable in tests. The login follows no redirect (it
    would carry the password to the host the answer names): a 3xx is an error naming ``endpoint_setting``. An
    ``http://`` endpoint must be on loopback unless ``insecure_http`` (DDS_ALLOW_INSECURE_HTTP).
    """

    def __init__(
        self,
        iam_endpoint: str,
        username: str,
        password: str,
        domain: str,
        project_id: str,
        session: requests.Session | None = None,
        refresh_margin: timedelta = timedelta(minutes=30),
        timeout: tuple[float, float] = (5, 30),
        clock: Callable[[], datetime] = utc_now,
        endpoint_setting: str = "DDS_IAM_ENDPOINT",
        insecure_http: bool = False,
    ) -> None:
        for what, value in (("IAM user name", username), ("IAM password", password),
                            ("IAM domain (account name)", domain), ("project id", project_id)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{what} must be a non-empty string")
        self._tokens_url = validated_iam_endpoint(iam_endpoint, insecure_http=insecure_http) + TOKENS_PATH
        self._username = username
        self._password = password
        self._domain = domain
        self._project_id = project_id
        self._session = session or requests.Session()
        self._refresh_margin = refresh_margin
        self._timeout = timeout
        self._clock = clock
        self._endpoint_setting = endpoint_setting
        self._lock = threading.Lock()
        self._cached: IamToken | None = None
        self.fetch_count = 0

    def token(self) -> str:
        """A valid token, from the cache or freshly fetched."""
        with self._lock:
            if self._cached is None or self._due_for_refresh(self._cached):
                self._cached = self._fetch()
            return self._cached.value

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token; with ``token``, only if it is still the cached one.

        Concurrent requests rejected with the same old token thus cause one fetch, not one each.
        """
        with self._lock:
            if token is None or (self._cached is not None and self._cached.value == token):
                self._cached = None

    def _due_for_refresh(self, token: IamToken) -> bool:
        margin = min(self._refresh_margin, max(token.expires_at - token.issued_at, timedelta(0)) / 2)
        return self._clock() >= token.expires_at - margin

    def _login_body(self) -> dict:
        user = {"name": self._username, "password": self._password, "domain": {"name": self._domain}}
        return {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": {"id": self._project_id}},
            }
        }

    def _fetch(self) -> IamToken:
        try:
            response = self._session.post(self._tokens_url, json=self._login_body(), timeout=self._timeout,
                                          allow_redirects=False)
        except requests.RequestException as exc:
            raise IamError(
                f"IAM token request to {self._tokens_url} failed: {type(exc).__name__}"
            ) from None
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location")
            raise IamError(f"IAM login at {self._tokens_url} answered HTTP {response.status_code}: "
                           + refused_redirect(location, self._tokens_url, self._endpoint_setting))
        if response.status_code != 201:
            raise IamError(
                f"IAM refused a token for user {self._username!r} at {self._tokens_url}: "
                f"HTTP {response.status_code} {self._error_detail(response)}"
            )
        value = response.headers.get(SUBJECT_TOKEN_HEADER)
        if not value:
            raise IamError(f"IAM answer from {self._tokens_url} has no {SUBJECT_TOKEN_HEADER} header")
        self.fetch_count += 1
        return IamToken(value=value, issued_at=self._clock(), expires_at=self._expires_at(response))

    def _expires_at(self, response: requests.Response) -> datetime:
        try:
            expires_at = datetime.fromisoformat(response.json()["token"]["expires_at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IamError(
                f"IAM answer from {self._tokens_url} has no readable token.expires_at ({type(exc).__name__})"
            ) from None
        return expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=timezone.utc)

    def _error_detail(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return one_line(response.text or "(empty body)").replace(self._password, "***")
        error = body.get("error", body) if isinstance(body, dict) else {}
        if not isinstance(error, dict):
            error = {}
        # IAM answers {"error_code", "error_msg"} or, keystone-style, {"error": {"code": 401, "title", "message"}}.
        code = str(error.get("error_code") or error.get("title") or error.get("code") or "(no error code)")
        message = error.get("error_msg") or error.get("message") or ""
        return one_line(f"{code} {message}".strip()).replace(self._password, "***")

    def __repr__(self) -> str:
        return (
            f"IamTokenProvider(endpoint={self._tokens_url!r}, username={self._username!r}, password=***, "
            f"domain={self._domain!r}, project_id={self._project_id!r})"
        )

    __str__ = __repr__
