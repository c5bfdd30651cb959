"""Which credentials a run uses (AK/SK, then the IAM user, then a static token), the one-line errors for partial
or missing sets, and no secret in any log line or error. No secret in any repr, an IAM provider's with its token
included: tests/integration/test_auth.py."""

import logging

import pytest

from pipeline.api.auth import AkSkAuth, IamTokenAuth, TokenAuth
from pipeline.api.credentials import (
    STATIC_TOKEN_WARNING,
    Credentials,
    CredentialsError,
    build_auth,
)
from pipeline.api.iam import IamTokenProvider
from pipeline.config import ConfigError
from tests.support.credentials import (
    AK,
    AKSK_ENV,
    DOMAIN,
    IAM_ENV,
    PASSWORD,
    SECRETS,
    SECURITY_TOKEN,
    SK,
    STATIC_TOKEN,
    USER,
)


@pytest.mark.parametrize("env,expected", [
    ({**AKSK_ENV, **IAM_ENV, "DDS_AUTH_TOKEN": STATIC_TOKEN}, (AkSkAuth, "aksk")),
    ({**IAM_ENV, "DDS_AUTH_TOKEN": STATIC_TOKEN}, (IamTokenAuth, "iam")),
    ({"DDS_AUTH_TOKEN": STATIC_TOKEN, "HUAWEICLOUD_SDK_AK": " ", "DDS_IAM_USERNAME": ""}, (TokenAuth, "token")),
])
def test_precedence_is_aksk_then_iam_user_then_static_token(env, expected):
    auth, method = build_auth(Credentials.from_env(env), "project-1")
    assert (type(auth), method) == expected


@pytest.mark.parametrize("env,message", [
    ({}, "no DDS credentials: set HUAWEICLOUD_SDK_AK/SK, DDS_IAM_* or DDS_AUTH_TOKEN"),
    ({"HUAWEICLOUD_SDK_AK": AK}, "HUAWEICLOUD_SDK_AK set but HUAWEICLOUD_SDK_SK missing"),
    ({"HUAWEICLOUD_SDK_SK": SK, "DDS_AUTH_TOKEN": STATIC_TOKEN},
     "HUAWEICLOUD_SDK_SK set but HUAWEICLOUD_SDK_AK missing"),
    ({"DDS_IAM_USERNAME": USER, "DDS_IAM_DOMAIN": DOMAIN},
     "DDS_IAM_USERNAME, DDS_IAM_DOMAIN set but DDS_IAM_PASSWORD missing"),
    ({"DDS_IAM_USERNAME": USER, "DDS_IAM_PASSWORD": PASSWORD, **AKSK_ENV},
     "DDS_IAM_USERNAME, DDS_IAM_PASSWORD set but DDS_IAM_DOMAIN missing"),
    ({"DDS_IAM_PASSWORD": PASSWORD}, "DDS_IAM_PASSWORD set but DDS_IAM_USERNAME, DDS_IAM_DOMAIN missing"),
    ({"HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN, "DDS_AUTH_TOKEN": STATIC_TOKEN},
     "HUAWEICLOUD_SDK_SECURITY_TOKEN set without HUAWEICLOUD_SDK_AK/SK"),
    ({**IAM_ENV, "DDS_IAM_ENDPOINT": "iam.example.com"},
     "DDS_IAM_ENDPOINT: IAM endpoint must be an http(s) URL such as https://iam.myhuaweicloud.com, got 'iam.ex"),
    ({**IAM_ENV, "DDS_IAM_ENDPOINT": f"https://{USER}:{PASSWORD}@iam.example.com"},
     "DDS_IAM_ENDPOINT: IAM endpoint must not embed credentials"),
])
def test_credential_selection_errors_name_what_is_wrong(env, message):
    with pytest.raises(ConfigError) as caught:
        build_auth(Credentials.from_env(env), "project-1")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not any(secret in str(caught.value) for secret in SECRETS)


@pytest.mark.parametrize("env", [AKSK_ENV, IAM_ENV])
def test_signed_and_iam_methods_need_a_project_id(env):
    with pytest.raises(CredentialsError, match="^DDS_PROJECT_ID is not set"):
        build_auth(Credentials.from_env(env), "")


def test_static_token_is_warned_about_through_logging(caplog):
    caplog.set_level(logging.WARNING)
    build_auth(Credentials.from_env({"DDS_AUTH_TOKEN": STATIC_TOKEN}), "project-1")
    assert STATIC_TOKEN_WARNING in caplog.messages
    caplog.clear()
    build_auth(Credentials.from_env(AKSK_ENV), "project-1")
    assert caplog.messages == []


@pytest.mark.parametrize("factory", [
    lambda: TokenAuth(""), lambda: AkSkAuth(AK, ""), lambda: AkSkAuth(AK, "SECRET with\nnewline"),
    lambda: IamTokenProvider("http://iam", USER, "", DOMAIN, "p1"),
    lambda: IamTokenProvider("ftp://iam", USER, PASSWORD, DOMAIN, "p1"),
])
def test_bad_secrets_are_refused_at_construction_without_echoing_them(factory):
    with pytest.raises(ValueError) as caught:
        factory()
    assert "SECRET" not in str(caught.value) and "\n" not in str(caught.value)
