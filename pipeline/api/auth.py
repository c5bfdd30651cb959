"""``requests`` authentication for the DDS API: a static token, AK/SK signing, or an IAM user's token.

Every class hides its secrets from ``repr``/``str``, so a credential never reaches a log line or a traceback.
"""

import logging
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.auth import AuthBase

from pipeline.api.errors import parse_error_body
from pipeline.api.iam import IamTokenProvider
from pipeline.api.signer import canonical_query, sign_request

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Auth-Token"
# 401 codes of the API gateway that a fresh token can cure: APIG.0307 expired, APIG.0301 invalid (revoked).
TOKEN_REJECTED_CODES = frozenset({"APIG.0301", "APIG.0307"})


def mask_key(key: str | None) -> str:
    """An access key as it may be shown: its first 4 characters, then ``***``."""
    return f"{key[:4]}***" if key else "None"


def _require_secret(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if value != value.strip() or any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in value):
        # Header values must be printable ASCII; the value itself is never echoed.
        raise ValueError(f"{what} must be printable ASCII without surrounding spaces")
    return value


class TokenAuth(AuthBase):
    """Sends a ready IAM token in ``X-Auth-Token`` (valid for at most 24 hours)."""

    def __init__(self, token: str) -> None:
        self._token = _require_secret(token, "the auth token")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[TOKEN_HEADER] = self._token
        return request

    def __repr__(self) -> str:
        return "TokenAuth(token=***)"

    __str__ = __repr__


class AkSkAuth(AuthBase):
    """Signs each request with an access key pair (``SDK-HMAC-SHA256``); ``security_token`` for temporary keys."""

    def __init__(
        self, ak: str, sk: str, project_id: str | None = None, security_token: str | None = None
    ) -> None:
        self._ak = _require_secret(ak, "the access key (AK)")
        self._sk = _require_secret(sk, "the secret key (SK)")
        self._project_id = project_id or None
        self._security_token = (
            _require_secret(security_token, "the security token") if security_token else None
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # The gateway recomputes the signature from the query it receives; sending the canonical form itself,
        # as the official SDK does, leaves no room for a `+` versus `%20` disagreement.
        parts = urlsplit(request.url)
        request.url = urlunsplit(parts._replace(query=canonical_query(parts.query)))
        request.headers.update(
            sign_request(
                request.method or "GET",
                request.url,
                request.headers,
                request.body,
                self._ak,
                self._sk,
                project_id=self._project_id,
                security_token=self._security_token,
            )
        )
        return request

    def __repr__(self) -> str:
        temporary = ", security_token=***" if self._security_token else ""
        return f"AkSkAuth(ak={mask_key(self._ak)}, sk=***, project_id={self._project_id!r}{temporary})"

    __str__ = __repr__


def _gateway_error_code(response: requests.Response) -> str | None:
    code, _, _ = parse_error_body(response.content)
    return code


class IamTokenAuth(AuthBase):
    """Sends the token of an IAM user, fetched and cached by ``provider``.

    A 401 ``APIG.0307``/``APIG.0301`` answer (token expired or revoked) makes it fetch a new token and resend
    the request once; the resent request's answer is final, whatever it is, so a bad login never loops.
    """

    def __init__(self, provider: IamTokenProvider) -> None:
        self._provider = provider

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[TOKEN_HEADER] = self._provider.token()
        request.register_hook("response", self._refresh_once_on_401)
        return request

    def _refresh_once_on_401(self, response: requests.Response, **send_kwargs) -> requests.Response:
        error_code = _gateway_error_code(response) if response.status_code == 401 else None
        if error_code not in TOKEN_REJECTED_CODES:
            return response
        rejected_token = response.request.headers.get(TOKEN_HEADER)
        log.info("DDS API rejected the IAM token (%s); fetching a new one and resending once", error_code)
        self._provider.invalidate(rejected_token)
        fresh_token = self._provider.token()
        response.content  # noqa: B018 - drain the body so the connection can be reused
        response.close()
        resent = response.request.copy()
        resent.headers[TOKEN_HEADER] = fresh_token
        # The adapter's send runs no response hooks, so this answer is never refreshed again.
        final = response.connection.send(resent, **send_kwargs)
        final.history.append(response)
        final.request = resent
        return final

    def __repr__(self) -> str:
        return f"IamTokenAuth(provider={self._provider!r})"

    __str__ = __repr__
