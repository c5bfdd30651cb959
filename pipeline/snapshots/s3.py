"""S3-compatible object storage (AWS S3, Huawei Cloud OBS, MinIO) for the Parquet snapshots.

A root is written ``s3://bucket/prefix``; how to reach it comes from these variables (docs/deployment.md), which
:mod:`pipeline.config` reads (a run gets them bound to its resource): this module reads no environment itself.

- ``DDS_S3_ENDPOINT`` (else ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``): URL of the S3 API, e.g.
  ``https://obs.ap-southeast-1.myhuaweicloud.com``; default AWS S3.
- ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``): region requests are signed for; ``us-east-1`` with an endpoint.
- ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``: the key pair (+ token of temporary
  keys); without them the AWS SDK's chain (profile, instance role).
- ``DDS_S3_ADDRESSING_STYLE``: ``path`` (``endpoint/bucket/key``, default with an endpoint) or ``virtual``
  (``bucket.endpoint/key``).
- ``AWS_CA_BUNDLE``: CA bundle to verify the endpoint's TLS certificate with.

Every problem is one ``ValueError`` line naming the variable; secrets never appear in it nor in a repr.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import pyarrow.fs as pafs

S3_SCHEME = "s3://"
# Bucket names as S3 and OBS accept them: 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENDPOINT_VARIABLES = ("DDS_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
# Every variable this module's table names: what the wiring binds (as EnvVar) for a run to read.
S3_VARIABLES = (*_ENDPOINT_VARIABLES, *_REGION_VARIABLES, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "DDS_S3_ADDRESSING_STYLE", "AWS_CA_BUNDLE")
# Signature V4 needs some region; S3-compatible servers (MinIO, moto) accept the AWS default.
_DEFAULT_REGION_WITH_ENDPOINT = "us-east-1"
_ADDRESSING_STYLES = ("path", "virtual")


def is_s3_uri(root: object) -> bool:
    """Whether a Parquet root names object storage (``s3://...``) rather than a local folder."""
    return isinstance(root, str) and root.strip().lower().startswith(S3_SCHEME)


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no leading or trailing "/"; empty for the bucket's top)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str, setting: str = "DDS_PARQUET_ROOT") -> "S3Location":
        """``s3://bucket/prefix`` as a location, or a ValueError naming ``setting`` (no request made)."""
        if not is_s3_uri(uri):
            raise ValueError(f"{setting} is not an s3:// URI such as s3://bucket/prefix")
        rest = uri.strip()[len(S3_SCHEME):]
        authority, _, prefix = rest.partition("/")
        if "@" in authority:
            # pyarrow would read user:secret@ as credentials; we never echo such a value.
            raise ValueError(
                f"{setting} must not hold credentials (user:secret@bucket): "
                "use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if "?" in rest or "#" in rest:
            raise ValueError(f"{setting}={uri.strip()!r} has a query or fragment: put S3 options in DDS_S3_* variables")
        if not _BUCKET.match(authority):
            raise ValueError(
                f"{setting}={uri.strip()!r} does not name a valid bucket "
                "(3-63 lower-case letters, digits, '.' or '-'), e.g. s3://bucket/prefix"
            )
        if "//" in prefix.strip("/"):
            raise ValueError(f"{setting}={uri.strip()!r} has an empty path segment ('//')")
        return cls(authority, prefix.strip("/"))

    @property
    def path(self) -> str:
        """The location as pyarrow's S3FileSystem names it: ``bucket/prefix``."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.path}"


@dataclass(frozen=True)
class S3Options:
    """How to reach the object storage: endpoint, region, credentials. Built by :meth:`from_variables`; the
    defaults are the AWS SDK's own (its credential chain, AWS S3)."""

    endpoint: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing_style: str | None = None
    ca_bundle: str | None = None

    @classmethod
    def from_variables(cls, env: Mapping[str, str]) -> "S3Options":
        """The options the variables of this module's table in ``env`` (a mapping of them, never read from the
        process) give; ValueError naming a bad one."""
        endpoint = _first(env, _ENDPOINT_VARIABLES)
        if endpoint is not None:
            endpoint = _check_endpoint(*endpoint)
        access_key, secret_key = _value(env, "AWS_ACCESS_KEY_ID"), _value(env, "AWS_SECRET_ACCESS_KEY")
        if bool(access_key) != bool(secret_key):
            missing = "AWS_SECRET_ACCESS_KEY" if access_key else "AWS_ACCESS_KEY_ID"
            raise ValueError(
                f"{missing} is not set: S3 credentials need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        style = _value(env, "DDS_S3_ADDRESSING_STYLE")
        if style is not None and style.lower() not in _ADDRESSING_STYLES:
            raise ValueError(f"DDS_S3_ADDRESSING_STYLE={style!r} is neither 'path' nor 'virtual'")
        ca_bundle = _value(env, "AWS_CA_BUNDLE")
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise ValueError(f"AWS_CA_BUNDLE={ca_bundle!r} is not a file")
        region = _first(env, _REGION_VARIABLES)
        return cls(
            endpoint=endpoint,
            region=region[1] if region else None,
            access_key=access_key,
            secret_key=secret_key,
            session_token=_value(env, "AWS_SESSION_TOKEN") if access_key else None,
            addressing_style=style.lower() if style else None,
            ca_bundle=ca_bundle,
        )

    def filesystem(self) -> "pafs.S3FileSystem":
        """A pyarrow S3FileSystem with these options; it makes no request until used."""
        # Here, not at the module's import: the settings check S3 URIs when the definitions load, Arrow only at runs.
        import pyarrow.fs as pafs

        endpoint = urlsplit(self.endpoint) if self.endpoint else None
        return pafs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            session_token=self.session_token,
            region=self.region or (_DEFAULT_REGION_WITH_ENDPOINT if endpoint else None),
            scheme=endpoint.scheme if endpoint else "https",
            endpoint_override=endpoint.netloc if endpoint else None,
            force_virtual_addressing=self.addressing_style == "virtual",
            tls_ca_file_path=self.ca_bundle,
            # Delayed open lets a small object go up as one PutObject instead of a multipart upload, so a
            # day object replaced in one request is all or nothing (larger ones complete as one multipart).
            allow_delayed_open=True,
        )


def _value(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """The first of ``names`` that is set, as (name, value)."""
    for name in names:
        value = _value(env, name)
        if value is not None:
            return name, value
    return None


def _check_endpoint(name: str, value: str) -> str:
    """An http(s) URL of a host (and port), or a ValueError naming ``name``; the value is shown only once it is
    known to hold no credentials."""
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a port that is not a number
        usable = False
    if not usable or parts.username or parts.password:
        raise ValueError(
            f"{name} is not an http(s) URL without credentials, e.g. https://obs.ap-southeast-1.myhuaweicloud.com"
        )
    if parts.path.strip("/") or parts.query:
        raise ValueError(
            f"{name}={value!r} has a path or query: give the endpoint only, the bucket goes in DDS_PARQUET_ROOT"
        )
    return value.rstrip("/")


def check_parquet_root(root: str, s3_variables: Mapping[str, str] | None = None) -> None:
    """ValueError naming what is wrong unless ``root`` is a local folder or an s3:// URI whose S3 variables
    (``s3_variables``; none: the AWS SDK's defaults) are usable. No request is made, nothing is written."""
    if is_s3_uri(root):
        S3Location.parse(root)
        S3Options.from_variables(s3_variables or {})
    elif "://" in root:
        # Only the scheme is shown: the rest of a URI may hold credentials.
        raise ValueError(
            f"DDS_PARQUET_ROOT names a {root.split('://', 1)[0]}:// URI: only local folders and "
            "s3://bucket/prefix (S3, OBS, MinIO) are supported"
        )
