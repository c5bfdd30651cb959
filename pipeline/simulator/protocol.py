"""The simulator's HTTP vocabulary: requests as handlers see them, answers, error bodies, authenticators, routes."""

import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Headers whose values are credentials: kept for inspection, never shown by repr().
SECRET_HEADERS = frozenset({"x-auth-token", "authorization", "x-subject-token", "x-security-token"})


class ApiError(Exception):
    """An error answer in the provider's shape: HTTP status and body {"error_code", "error_msg"}."""

    def __init__(self, status: int, error_code: str, error_msg: str) -> None:
        super().__init__(f"{status} {error_code}: {error_msg}")
        self.status, self.error_code, self.error_msg = status, error_code, error_msg


def _redacted(headers: dict[str, str]) -> dict[str, str]:
    return {name: "***" if name.lower() in SECRET_HEADERS else value for name, value in headers.items()}


@dataclass(frozen=True)
class RequestInfo:
    """A request as received: `path` and `raw_query` exactly as sent (not decoded), `query` decoded by
    parse_qsl (a bare `+` is a space), `path_params` the named groups of the route's pattern."""
    method: str
    path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    path_params: dict[str, str] = field(default_factory=dict)
    # time.monotonic() when the request was taken up: what a latency counts from.
    received_at: float = field(default_factory=time.monotonic, repr=False)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), default)


@dataclass(frozen=True)
class Response:
    """An answer: status, headers (Content-Type included) and body bytes."""
    status: int
    headers: dict[str, str]
    body: bytes


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"Content-Type": "application/json;charset=UTF-8", **(headers or {})},
                    json.dumps(payload, separators=(",", ":")).encode())


def error_response(error: ApiError) -> Response:
    return json_response(error.status, {"error_code": error.error_code, "error_msg": error.error_msg})


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator received and what it answered; `status` 0 when the connection was dropped,
    `received_at` the time.monotonic() it arrived. repr() masks credential headers."""
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    fault: str | None
    raw_query: str = ""
    received_at: float = 0.0

    def __repr__(self) -> str:
        return (f"RecordedRequest(method={self.method!r}, path={self.path!r}, query={self.query!r}, "
                f"headers={_redacted(self.headers)!r}, status={self.status}, fault={self.fault!r})")


class Authenticator(Protocol):
    """Checks a request to an authenticated route: returns (or raises) an ApiError to refuse it, else None."""

    def check(self, request: RequestInfo) -> ApiError | None: ...


class TokenAuthenticator:
    """The gateway's static token check: X-Auth-Token must equal the configured token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def __repr__(self) -> str:
        return "TokenAuthenticator(token=***)"

    def check(self, request: RequestInfo) -> ApiError | None:
        sent = request.header("X-Auth-Token")
        if not sent:
            return ApiError(401, "APIG.0301", "Incorrect IAM authentication information: x-auth-token not found")
        if not hmac.compare_digest(sent.encode(), self._token):
            return ApiError(401, "APIG.0301", "Incorrect IAM authentication information: decrypt token fail")
        return None


class OpenAuthenticator:
    """Accepts every request (the config's token is None)."""

    def check(self, request: RequestInfo) -> ApiError | None:
        return None


Handler = Callable[["DdsSimulator", RequestInfo], Response]


@dataclass(frozen=True)
class Route:
    """`method` + a full match of `pattern` on the raw path go to `handler`; `authenticated` routes pass the
    authenticator first; `faultable` routes receive injected faults."""
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    authenticated: bool = True
    faultable: bool = False


def as_route(spec: "Route | tuple[Any, ...]") -> Route:
    """A Route from a Route or a tuple (method, regex, handler[, authenticated[, faultable]])."""
    if isinstance(spec, Route):
        return spec
    if not isinstance(spec, tuple) or not 3 <= len(spec) <= 5 or not callable(spec[2]):
        raise ValueError(f"extra route must be (method, regex, handler[, authenticated[, faultable]]), got {spec!r}")
    method, pattern, handler, *flags = spec
    return Route(str(method).upper(), re.compile(pattern) if isinstance(pattern, str) else pattern, handler, *flags)
