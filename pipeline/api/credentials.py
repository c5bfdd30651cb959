"""Which credentials a run uses, from the docs/configuration.md variables, and the ``requests`` auth built from them.

Precedence when several complete sets are given: AK/SK, then the IAM user, then the static token. A partial
set (an AK without its SK, an IAM user without password or domain, ...) is an error even when another set is
complete: it is a sign of a misconfiguration that should not silently pick the other method.
"""

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields

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

METHOD_VARIABLES = {AKSK: "HUAWEICLOUD_SDK_AK/SK", IAM: "DDS_IAM_*", TOKEN: "DDS_AUTH_TOKEN"}
_AKSK_FIELDS = ("access_key", "secret_key")
_IAM_FIELDS = ("iam_username", "iam_password", "iam_domain")


class CredentialsError(ConfigError):
    """No usable credentials, or a partial set; one line naming the variables, never a secret's value."""


def _blank_to_none(value: str | None) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else value


def _setting(variable: str, *, secret: bool = False, default: str | None = None):
    """A credential field: the variable of docs/configuration.md that sets it, and whether it is a secret."""
    return field(default=default, metadata={"variable": variable, "secret": secret})


@dataclass(frozen=True, repr=False)
class Credentials:
    """The credentials a run may use; ``None`` (or blank) means not set. The one declaration of the credential
    fields: their variables (ENV_VARIABLES), the secret ones (SECRET_FIELDS) and the Dagster config of the resource
    (pipeline/defs/resources.py) all derive from it."""

    auth_token: str | None = _setting("DDS_AUTH_TOKEN", secret=True)
    access_key: str | None = _setting("HUAWEICLOUD_SDK_AK")
    secret_key: str | None = _setting("HUAWEICLOUD_SDK_SK", secret=True)
    security_token: str | None = _setting("HUAWEICLOUD_SDK_SECURITY_TOKEN", secret=True)
    iam_username: str | None = _setting("DDS_IAM_USERNAME")
    iam_password: str | None = _setting("DDS_IAM_PASSWORD", secret=True)
    iam_domain: str | None = _setting("DDS_IAM_DOMAIN")
    iam_endpoint: str | None = _setting("DDS_IAM_ENDPOINT", default=DEFAULT_IAM_ENDPOINT)

    def __post_init__(self) -> None:
        for field in fields(self):
            object.__setattr__(self, field.name, _blank_to_none(getattr(self, field.name)))
        if self.iam_endpoint is None:
            object.__setattr__(self, "iam_endpoint", DEFAULT_IAM_ENDPOINT)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Credentials":
        """The credentials the variables of docs/configuration.md in ``env`` name (unset ones stay ``None``)."""
        return cls(**{name: env.get(variable) for name, variable in ENV_VARIABLES.items()})

    def method(self) -> str:
        """``aksk``, ``iam`` or ``token``: the method these credentials select; CredentialsError if none or partial."""
        return method_of({field.name for field in fields(self) if getattr(self, field.name)})

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


# Field name -> the environment variable that sets it (docs/configuration.md).
ENV_VARIABLES = {field.name: field.metadata["variable"] for field in fields(Credentials)}
SECRET_FIELDS = frozenset(field.name for field in fields(Credentials) if field.metadata["secret"])


def method_of(present: Collection[str]) -> str:
    """``aksk``, ``iam`` or ``token``: the method credentials whose fields ``present`` are set select (no value is
    needed to tell it); CredentialsError if none or a partial set."""
    _reject_partial_sets(present)
    if "access_key" in present:
        return AKSK
    if "iam_username" in present:
        return IAM
    if "auth_token" in present:
        return TOKEN
    raise CredentialsError("no DDS credentials: set HUAWEICLOUD_SDK_AK/SK, DDS_IAM_* or DDS_AUTH_TOKEN")


def _reject_partial_sets(present: Collection[str]) -> None:
    for group, label in ((_AKSK_FIELDS, "an access key pair"), (_IAM_FIELDS, "an IAM user login")):
        missing = [ENV_VARIABLES[name] for name in group if name not in present]
        if missing and len(missing) < len(group):
            given = [ENV_VARIABLES[name] for name in group if name in present]
            raise CredentialsError(
                f"{', '.join(given)} set but {', '.join(missing)} missing: {label} needs "
                f"{', '.join(ENV_VARIABLES[name] for name in group)}"
            )
    if "security_token" in present and "access_key" not in present:
        raise CredentialsError(
            "HUAWEICLOUD_SDK_SECURITY_TOKEN set without HUAWEICLOUD_SDK_AK/SK: a temporary key needs all three"
        )


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
