"""Which credentials a run uses, from the docs/configuration.md variables, and the ``requests`` auth built from them.

Precedence when several complete sets are given: AK/SK, then the IAM user, then the static token. A partial
set (an AK without its SK, an IAM user without password or domain, ...) is an error even when another set is
complete: it is a sign of a misconfiguration that should not silently pick the other method.
"""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

import requests
from requests.auth import AuthBase

from pipeline.api.auth import AkSkAuth, IamTokenAuth, TokenAuth, mask_key
from pipeline.api.iam import (
    DEFAULT_IAM_ENDPOINT,
    IamTokenProvider,
    validated_iam_endpoint,
)
from pipeline.values import ConfigError

log = logging.getLogger(__name__)

AKSK, IAM, TOKEN = "aksk", "iam", "token"
STATIC_TOKEN_WARNING = "DDS_AUTH_TOKEN expires within 24 hours; use AK/SK or an IAM user for schedules"

# Field name -> the environment variable that sets it (docs/configuration.md).
ENV_VARIABLES = {
    "auth_token": "DDS_AUTH_TOKEN",
    "access_key": "HUAWEICLOUD_SDK_AK",
    "secret_key": "HUAWEICLOUD_SDK_SK",
    "security_token": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "iam_username": "DDS_IAM_USERNAME",
    "iam_password": "DDS_IAM_PASSWORD",
    "iam_domain": "DDS_IAM_DOMAIN",
    "iam_endpoint": "DDS_IAM_ENDPOINT",
}
METHOD_VARIABLES = {AKSK: "HUAWEICLOUD_SDK_AK/SK", IAM: "DDS_IAM_*", TOKEN: "DDS_AUTH_TOKEN"}
SECRET_FIELDS = frozenset({"auth_token", "secret_key", "security_token", "iam_password"})
_AKSK_FIELDS = ("access_key", "secret_key")
_IAM_FIELDS = ("iam_username", "iam_password", "iam_domain")


class CredentialsError(ConfigError):
    """No usable credentials, or a partial set; one line naming the variables, never a secret's value."""


def _blank_to_none(value: str | None) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else value


@dataclass(frozen=True, repr=False)
class Credentials:
    """The credentials a run may use; ``None`` (or blank) means not set."""

    auth_token: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    security_token: str | None = None
    iam_username: str | None = None
    iam_password: str | None = None
    iam_domain: str | None = None
    iam_endpoint: str | None = DEFAULT_IAM_ENDPOINT

    def __post_init__(self) -> None:
        for field in fields(self):
            object.__setattr__(self, field.name, _blank_to_none(getattr(self, field.name)))
        if self.iam_endpoint is None:
            object.__setattr__(self, "iam_endpoint", DEFAULT_IAM_ENDPOINT)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Credentials":
        """The credentials named by the environment variables of docs/configuration.md (unset ones stay ``None``)."""
        return cls(**{name: env.get(variable) for name, variable in ENV_VARIABLES.items()})

    def method(self) -> str:
        """``aksk``, ``iam`` or ``token``: the method these credentials select; CredentialsError if none or partial."""
        self._reject_partial_sets()
        if self.access_key:
            return AKSK
        if self.iam_username:
            return IAM
        if self.auth_token:
            return TOKEN
        raise CredentialsError("no DDS credentials: set HUAWEICLOUD_SDK_AK/SK, DDS_IAM_* or DDS_AUTH_TOKEN")

    def _reject_partial_sets(self) -> None:
        for group, label in ((_AKSK_FIELDS, "an access key pair"), (_IAM_FIELDS, "an IAM user login")):
            missing = [ENV_VARIABLES[name] for name in group if not getattr(self, name)]
            if missing and len(missing) < len(group):
                present = [ENV_VARIABLES[name] for name in group if getattr(self, name)]
                raise CredentialsError(
                    f"{', '.join(present)} set but {', '.join(missing)} missing: {label} needs "
                    f"{', '.join(ENV_VARIABLES[name] for name in group)}"
                )
        if self.security_token and not self.access_key:
            raise CredentialsError(
                "HUAWEICLOUD_SDK_SECURITY_TOKEN set without HUAWEICLOUD_SDK_AK/SK: a temporary key needs all three"
            )

    def __repr__(self) -> str:
        shown = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and field.name in SECRET_FIELDS:
                shown.append(f"{field.name}=***")
            elif value is not None and field.name == "access_key":
                shown.append(f"{field.name}={mask_key(value)}")
            else:
                shown.append(f"{field.name}={value!r}")
        return f"Credentials({', '.join(shown)})"

    __str__ = __repr__


def build_auth(
    creds: Credentials, project_id: str, *, session: requests.Session | None = None, variable_prefix: str = "",
    insecure_http: bool = False,
) -> tuple[AuthBase, str]:
    """The ``requests`` auth for ``creds`` and the method's name (``aksk``, ``iam``, ``token``).

    Sends nothing: an IAM token is fetched at the first request. ``session`` carries the IAM requests.
    ``variable_prefix``: the prefix of the variables ``creds`` were read from (a target's), for the errors.
    ``insecure_http`` (DDS_ALLOW_INSECURE_HTTP): the IAM endpoint may be ``http://`` off loopback.
    """
    iam_endpoint_variable = variable_prefix + ENV_VARIABLES["iam_endpoint"]
    method = creds.method()
    if method != TOKEN and not (project_id or "").strip():
        raise CredentialsError(f"DDS_PROJECT_ID is not set: {method} authentication is scoped to a project")
    if method == AKSK:
        auth: AuthBase = AkSkAuth(creds.access_key, creds.secret_key, project_id=project_id,
                                  security_token=creds.security_token)
    elif method == IAM:
        try:
            endpoint = validated_iam_endpoint(creds.iam_endpoint, insecure_http=insecure_http)
        except ValueError as exc:
            raise CredentialsError(f"{iam_endpoint_variable}: {exc}") from None
        provider = IamTokenProvider(endpoint, creds.iam_username, creds.iam_password, creds.iam_domain,
                                    project_id, session=session, endpoint_setting=iam_endpoint_variable,
                                    insecure_http=insecure_http)
        auth = IamTokenAuth(provider)
    else:
        log.warning(STATIC_TOKEN_WARNING)
        auth = TokenAuth(creds.auth_token)
    unused = _unused_sets(creds, method)
    if unused:
        log.info("DDS authentication: %s chosen; %s also set and ignored", method, " and ".join(unused))
    return auth, method


def _unused_sets(creds: Credentials, method: str) -> list[str]:
    present = {AKSK: creds.access_key, IAM: creds.iam_username, TOKEN: creds.auth_token}
    return [METHOD_VARIABLES[name] for name, value in present.items() if value and name != method]
