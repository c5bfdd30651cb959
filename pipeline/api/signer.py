"""AK/SK request signing with the provider's ``SDK-HMAC-SHA256`` scheme (docs/dds-api.md, "Authentication").

A pure function of the request and the key pair: it returns the headers to add and never sends anything.
Equality with the provider's reference signer (``huaweicloudsdkcore``) is proven in ``tests/unit/test_signer.py``;
the package itself is not imported here because it pins pymongo and pulls several packages.
"""

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import quote, unquote, unquote_plus, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_path(raw_path: str) -> str:
    """The path with each segment decoded, then percent-encoded (safe ``~``), always ending in ``/``."""
    path = "/".join(_encode(segment) for segment in unquote(raw_path or "/").split("/"))
    return path if path.endswith("/") else path + "/"


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The decoded (key, value) pairs of a query string, in the order sent.

    A ``+`` decodes to a space, as the API gateway reads it (docs/dds-api.md): this is also how ``requests``
    encodes a space in ``params``.
    """
    pairs = []
    for item in raw_query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def canonical_query(raw_query: str) -> str:
    """The query sorted by decoded (key, value), keys and values encoded like path segments."""
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(query_pairs(raw_query)))


def host_header(url: str) -> str:
    """The ``Host`` header an HTTP client sends for ``url``: the port only when it is not the scheme's default."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("cannot sign a request: the URL has no host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{parts.port}"
    return host


def _body_bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | str | None,
    ak: str,
    sk: str,
    *,
    project_id: str | None = None,
    security_token: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers that sign this request: ``X-Sdk-Date``, ``Authorization`` and, when given, ``X-Project-Id``
    and ``X-Security-Token``.

    Signed: ``host`` (from ``headers`` if it holds one, else derived from ``url``), ``x-sdk-date``,
    ``x-project-id``, ``x-security-token`` and ``content-type`` when present. ``now`` (default: the current
    time) is the signing instant; the gateway accepts it within about 15 minutes of its own clock.
    """
    if not ak or not sk:
        raise ValueError("cannot sign a request: the access key (AK) and secret key (SK) must both be non-empty")
    instant = now or datetime.now(timezone.utc)
    if instant.tzinfo is not None:
        instant = instant.astimezone(timezone.utc)
    added = {"X-Sdk-Date": instant.strftime(SDK_DATE_FORMAT)}
    if project_id:
        added["X-Project-Id"] = project_id
    if security_token:
        added["X-Security-Token"] = security_token

    lower_headers = {name.lower(): str(value).strip() for name, value in headers.items()}
    signed = {"host": lower_headers.get("host") or host_header(url)}
    if "content-type" in lower_headers:
        signed["content-type"] = lower_headers["content-type"]
    signed.update((name.lower(), value.strip()) for name, value in added.items())
    names = sorted(signed)

    parts = urlsplit(url)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(_body_bytes(body)).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, added["X-Sdk-Date"], hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    signature = hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    added["Authorization"] = f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, Signature={signature}"
    return added
