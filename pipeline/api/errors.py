"""The one error the DDS client raises, and the reading of the API's error bodies."""

import json
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

# The provider's gateway and SDKs use three spellings for the same two fields, at the top of the body or nested
# in an "error" object ({"error": {"code": "APIG.0307", "message": "..."}}), which the provider's SDK reads too.
_ERROR_FIELD_PAIRS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
_NESTED_ERROR = "error"
_EXCERPT_CHARS = 200

# What a person can do about a refusal that is never retried.
_HINTS = {
    400: "check the query (times, span of at most 30 days, filters)",
    401: "check the credentials (token, AK/SK or IAM user); not retried, as repeated bad signatures lock the key",
    403: "check the IAM permission dds:task:listAll and the project id",
    404: "check DDS_ENDPOINT and DDS_PROJECT_ID",
}


def one_line(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """``text`` with its whitespace collapsed, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def refused_redirect(location: str | None, request_url: str, setting: str) -> str:
    """Why a 3xx answer to a request carrying a credential was not followed, in one line: the host its Location
    names (resolved against ``request_url``; never its path or query, which may hold a secret, nor the body) and
    ``setting``, what the user corrects to the final address."""
    return (f"redirect to {_location_host(location, request_url)} not followed (a request carrying credentials "
            f"never follows a redirect): set {setting} to the final address")


def _location_host(location: str | None, request_url: str) -> str:
    if not location or not location.strip():
        return "(no Location header)"
    try:
        parts = urlsplit(urljoin(request_url, location.strip()))
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(an unreadable Location header)"
    if not host:
        return "(a Location without a host)"
    shown = one_line(f"[{host}]" if ":" in host else host, 100)
    return f"host {shown}" + (f":{port}" if port else "")


def parse_error_body(body: bytes) -> tuple[str | None, str | None, str]:
    """(error code, error message, short excerpt) of an error answer, whatever its shape (JSON or HTML)."""
    text = body.decode("utf-8", errors="replace")
    excerpt = one_line(text) or "(empty body)"
    try:
        parsed = json.loads(text)
    except ValueError:
        return None, None, excerpt
    if not isinstance(parsed, dict):
        return None, None, excerpt
    nested = parsed.get(_NESTED_ERROR)
    for fields in (parsed, nested) if isinstance(nested, dict) else (parsed,):
        for code_key, msg_key in _ERROR_FIELD_PAIRS:
            code, msg = fields.get(code_key), fields.get(msg_key)
            if code is not None or msg is not None:
                return (None if code is None else str(code)), (None if msg is None else one_line(str(msg))), excerpt
    return None, None, excerpt


@dataclass(frozen=True)
class Problem:
    """What one failed attempt showed, in one line.

    ``summary`` is the API's own words (``DBS.200001 <message>``, or an excerpt of a body that is not JSON) or
    the network failure (``ReadTimeout: ...``); the HTTP status travels apart in ``status``.
    """

    summary: str
    status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    request_id: str | None = None


class DdsApiError(Exception):
    """The DDS API refused a request, or kept failing until the retries ran out.

    ``status`` is the last HTTP status (None for a network failure), ``window`` the queried slice as text,
    ``attempts`` how many requests were sent for it. No credential is ever part of it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        window: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.window = window
        self.attempts = attempts

    @classmethod
    def _from_problem(cls, message: str, problem: Problem, window: str | None, attempts: int) -> "DdsApiError":
        return cls(
            message,
            status=problem.status,
            error_code=problem.error_code,
            error_msg=problem.error_msg,
            request_id=problem.request_id,
            window=window,
            attempts=attempts,
        )

    @classmethod
    def rejected(cls, problem: Problem, window: str | None, attempts: int = 1) -> "DdsApiError":
        """An answer that retrying cannot change (400, 401, 403, 404, an unusable 200...)."""
        where = f" for window {window}" if window else ""
        hint = _HINTS.get(problem.status or 0)
        message = (
            f"DDS rejected the request: {problem.summary} "
            f"(HTTP {problem.status if problem.status is not None else '-'}, "
            f"request id {problem.request_id or '-'}){where}" + (f": {hint}" if hint else "")
        )
        return cls._from_problem(message, problem, window, attempts)

    @classmethod
    def exhausted(cls, problem: Problem, window: str | None, attempts: int, reason: str = "") -> "DdsApiError":
        """Transient failures that outlasted the retry policy; ``reason`` says which limit ended it."""
        where = f" for window {window}" if window else ""
        last = f"HTTP {problem.status} {problem.summary}" if problem.status is not None else problem.summary
        message = (
            f"DDS API kept failing after {attempts} attempts{reason} "
            f"(last: {last}, request id {problem.request_id or '-'}){where}"
        )
        return cls._from_problem(message, problem, window, attempts)

    def __repr__(self) -> str:
        return f"DdsApiError({str(self)!r})"
