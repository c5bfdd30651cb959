"""The simulator's API gateway and IAM: static and IAM-issued tokens, and AK/SK signatures it verifies.

The signature check recomputes the canonical request from the raw request with code of its own (it shares
nothing with ``pipeline.api.signer``), so a bug in our signer shows up as a 401 here, as it would at the
provider. Rejections answer as the gateway does (docs/dds-api.md): 401 ``APIG.0301`` for a missing, unknown or
badly signed credential, 401 ``APIG.0307`` for an expired token.

    gateway = SimulatorAuthenticator(keys={ak: sk}, iam_users={"robot": ("password", "account")})
    DdsSimulator(SimulatorConfig(authenticator=gateway, extra_routes=gateway.routes()))
"""

import hashlib
import hmac
import json
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pipeline.simulator.server import (
    ApiError,
    DdsSimulator,
    RequestInfo,
    Response,
    Route,
    json_response,
)

INVALID_AUTH = "APIG.0301"
TOKEN_EXPIRED = "APIG.0307"
# The gateway accepts a signing time within about 15 minutes of its own clock.
SIGNING_TIME_SKEW = timedelta(minutes=15)
# After more than 5 bad signatures in a row the gateway locks the key for 5 minutes (docs/dds-api.md, "Errors").
LOCK_AFTER_BAD_SIGNATURES = 5
LOCK_DURATION = timedelta(minutes=5)

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_AUTHORIZATION = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<access>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


def _percent_decode(text: str, plus_means_space: bool) -> str:
    raw = text.encode("utf-8")
    decoded = bytearray()
    index = 0
    while index < len(raw):
        byte = raw[index]
        escape = raw[index + 1:index + 3]
        if byte == 0x25 and len(escape) == 2 and all(digit in _HEX_DIGITS for digit in escape):
            decoded.append(int(escape, 16))
            index += 3
            continue
        decoded.append(0x20 if byte == 0x2B and plus_means_space else byte)
        index += 1
    return decoded.decode("utf-8", errors="replace")


def _percent_encode(text: str) -> str:
    return "".join(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8"))


def gateway_canonical_request(
    method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], signed_names: list[str], body: bytes
) -> str:
    """The canonical request as the gateway rebuilds it from what it received (docs/authentication.md, AK/SK)."""
    segments = [_percent_encode(segment) for segment in _percent_decode(raw_path, False).split("/")]
    path = "/".join(segments)
    if not path.endswith("/"):
        path += "/"
    pairs = []
    for field in raw_query.split("&"):
        if not field:
            continue
        key, _, value = field.partition("=")
        # The gateway reads a bare `+` in the query as a space (docs/dds-api.md, "Request").
        pairs.append((_percent_decode(key, True), _percent_decode(value, True)))
    query = "&".join(_percent_encode(key) + "=" + _percent_encode(value) for key, value in sorted(pairs))
    received = {name.lower(): value.strip() for name, value in headers.items()}
    header_lines = "".join(name + ":" + received[name] + "\n" for name in signed_names)
    return "\n".join([method.upper(), path, query, header_lines, ";".join(signed_names),
                      hashlib.sha256(body).hexdigest()])


@dataclass
class _IssuedToken:
    """A token the fake IAM issued: to whom, for which project, and until when it is accepted."""

    user: str
    project_id: str
    expires_at: datetime


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class SimulatorAuthenticator:
    """Accepts ``tokens`` (static, never expiring), tokens it issued at ``POST /v3/auth/tokens`` while
    unexpired, and requests signed with a key of ``keys`` ({AK: SK}) or ``temporary_keys``
    ({AK: (SK, security token)}).

    ``iam_users`` maps a user name to (password, account name); issued tokens live ``token_lifetime``.
    ``revoke_all()`` expires every issued token at once, as a password change does. ``clock`` is the
    gateway's current UTC time. Counts for tests: ``issued_tokens``, ``rejections`` (by error code),
    ``accepted`` (by method: ``token``, ``iam``, ``aksk``).
    """

    def __init__(
        self,
        tokens: Iterable[str] = (),
        keys: Mapping[str, str] | None = None,
        temporary_keys: Mapping[str, tuple[str, str]] | None = None,
        iam_users: Mapping[str, tuple[str, str]] | None = None,
        token_lifetime: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not isinstance(token_lifetime, timedelta) or token_lifetime < timedelta(0):
            raise ValueError(f"token_lifetime must be a timedelta >= 0, got {token_lifetime!r}")
        for ak, secret in {**(keys or {}), **{k: v[0] for k, v in (temporary_keys or {}).items()}}.items():
            if not isinstance(ak, str) or not ak or not isinstance(secret, str) or not secret:
                raise ValueError("keys and temporary_keys must map non-empty access keys to non-empty secret keys")
        self._static_tokens = frozenset(tokens)
        self._keys = dict(keys or {})
        self._temporary_keys = dict(temporary_keys or {})
        self._iam_users = dict(iam_users or {})
        self.token_lifetime = token_lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, _IssuedToken] = {}
        self._bad_signatures: Counter[str] = Counter()
        self._locked_until: dict[str, datetime] = {}
        self.issued_tokens = 0
        self.rejections: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()

    # --- the gateway -------------------------------------------------------------------------------------

    def check(self, request: RequestInfo) -> ApiError | None:
        """The simulator's authenticator protocol: the refusal of ``request``, or None to let it through."""
        try:
            self.verify(request.method, request.path, request.raw_query, request.headers, request.body)
        except ApiError as refusal:
            return refusal
        return None

    def verify(self, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes) -> str:
        """The method that authenticated the request (``token``, ``iam``, ``aksk``); raises ApiError."""
        lower = {name.lower(): value for name, value in headers.items()}
        try:
            if "authorization" in lower:
                kind = self._verify_signature(method, raw_path, raw_query, lower, body or b"")
            elif "x-auth-token" in lower:
                kind = self._verify_token(lower["x-auth-token"].strip())
            else:
                raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: no credential")
        except ApiError as rejection:
            with self._lock:
                self.rejections[rejection.error_code] += 1
            raise
        with self._lock:
            self.accepted[kind] += 1
        return kind

    def _verify_token(self, token: str) -> str:
        if token in self._static_tokens:
            return "token"
        with self._lock:
            issued = self._issued.get(token)
        if issued is None:
            raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: unknown token")
        if self._clock() >= issued.expires_at:
            raise ApiError(401, TOKEN_EXPIRED, "The token expires.")
        return "iam"

    def _verify_signature(self, method: str, raw_path: str, raw_query: str, headers: dict[str, str],
                          body: bytes) -> str:
        parsed = _AUTHORIZATION.match(headers["authorization"].strip())
        if parsed is None:
            raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: malformed Authorization")
        access = parsed["access"]
        secret = self._secret_for(access, headers)
        now = self._clock()
        with self._lock:
            if self._locked_until.get(access, now) > now:
                raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: access key locked")
        signed_names = parsed["signed"].split(";")
        self._check_signed_headers(signed_names, headers, now)
        canonical = gateway_canonical_request(method, raw_path, raw_query, headers, signed_names, body)
        string_to_sign = "SDK-HMAC-SHA256\n{}\n{}".format(
            headers["x-sdk-date"].strip(), hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        )
        expected = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        with self._lock:
            if not hmac.compare_digest(expected, parsed["signature"]):
                self._bad_signatures[access] += 1
                if self._bad_signatures[access] > LOCK_AFTER_BAD_SIGNATURES:
                    self._locked_until[access] = now + LOCK_DURATION
                raise ApiError(401, INVALID_AUTH,
                               "Incorrect IAM authentication information: verify aksk signature fail")
            self._bad_signatures[access] = 0
        return "aksk"

    def _secret_for(self, access: str, headers: dict[str, str]) -> str:
        if access in self._keys:
            if "x-security-token" in headers:
                raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: unexpected security token")
            return self._keys[access]
        if access in self._temporary_keys:
            secret, security_token = self._temporary_keys[access]
            if headers.get("x-security-token", "").strip() != security_token:
                raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: bad security token")
            return secret
        raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: unknown access key")

    @staticmethod
    def _check_signed_headers(signed_names: list[str], headers: dict[str, str], now: datetime) -> None:
        must_sign = {"host", "x-sdk-date"} | ({"x-project-id", "x-security-token"} & headers.keys())
        unsigned = must_sign - set(signed_names)
        missing = [name for name in signed_names if name not in headers]
        if unsigned or missing or signed_names != sorted(signed_names):
            raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: bad SignedHeaders")
        try:
            signed_at = datetime.strptime(headers["x-sdk-date"].strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: bad X-Sdk-Date") from None
        if abs(now - signed_at) > SIGNING_TIME_SKEW:
            raise ApiError(401, INVALID_AUTH, "Incorrect IAM authentication information: X-Sdk-Date out of range")

    # --- IAM -----------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The fake IAM's routes, for ``SimulatorConfig(extra_routes=...)``: the login needs no token."""
        return [Route("POST", re.compile(r"/v3/auth/tokens"), self._handle_login, authenticated=False)]

    def _handle_login(self, sim: DdsSimulator, request: RequestInfo) -> Response:
        status, headers, body = self.issue_token(request.body)
        return json_response(status, body, headers)

    def issue_token(self, body: bytes) -> tuple[int, dict[str, str], dict]:
        """The IAM answer to a password login: (status, headers, JSON body)."""
        try:
            auth = json.loads(body)["auth"]
            user = auth["identity"]["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
            project = auth["scope"]["project"]
            project_id = project.get("id") or project["name"]
            if auth["identity"]["methods"] != ["password"]:
                raise ValueError("not a password login")
        except (ValueError, KeyError, TypeError):
            return 400, {}, {"error": {"code": 400, "title": "Bad Request",
                                       "message": "The request body is not a password login."}}
        if self._iam_users.get(name) != (password, domain):
            with self._lock:
                self.rejections["IAM.login"] += 1
            return 401, {}, {"error": {"code": 401, "title": "Unauthorized",
                                       "message": "The username or password is wrong."}}
        now = self._clock()
        token = "sim-iam-" + secrets.token_urlsafe(32)
        expires_at = now + self.token_lifetime
        with self._lock:
            self._issued[token] = _IssuedToken(name, project_id, expires_at)
            self.issued_tokens += 1
        stamp = expires_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body_out = {"token": {"expires_at": stamp, "issued_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                              "methods": ["password"], "user": {"name": name, "domain": {"name": domain}},
                              "project": {"id": project_id}}}
        return 201, {"X-Subject-Token": token}, body_out

    def revoke_all(self) -> None:
        """Expire every token issued so far (static tokens stay valid)."""
        now = self._clock()
        with self._lock:
            for issued in self._issued.values():
                issued.expires_at = min(issued.expires_at, now)

    def __repr__(self) -> str:
        return (f"SimulatorAuthenticator(tokens={len(self._static_tokens)}, keys={len(self._keys)}, "
                f"temporary_keys={len(self._temporary_keys)}, iam_users={sorted(self._iam_users)})")

    __str__ = __repr__
