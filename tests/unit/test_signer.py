"""Our AK/SK signer against the provider's reference signer (``huaweicloudsdkcore``): identical signatures.

Each case is a request as ``requests`` prepares it (its own query encoding: a space becomes ``+``) signed by
``AkSkAuth``, and the same request described to the reference SDK with its raw parameters. The signing
instant is frozen the same for both.
"""

import json
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api.auth import AkSkAuth
from pipeline.api.signer import host_header, sign_request

AK = "HPUAEXAMPLEKEY0001"
SK = "s3cr3t-Example+Secret/Key=="
FROZEN = datetime(2026, 11, 3, 4, 5, 6, tzinfo=timezone.utc)
SDK_DATE = "20261103T040506Z"
ENDPOINT = "https://dds.ap-southeast-1.myhuaweicloud.com"
PROJECT = "0123456789abcdef0123456789abcdef"
JOBS_PATH = f"/v3.1/{PROJECT}/jobs"


def reference_signature(
    method: str,
    endpoint: str,
    path: str,
    params: list[tuple[str, str]],
    body: bytes | None,
    content_type: str | None,
    project_id: str | None,
    security_token: str | None,
) -> tuple[str, str]:
    """(Authorization, request uri) as the official SDK computes them."""
    credentials = BasicCredentials(AK, SK, project_id)
    if security_token is not None:
        credentials.with_security_token(security_token)
    headers = {"X-Sdk-Date": SDK_DATE}
    if content_type:
        headers["Content-Type"] = content_type
    parts = urlsplit(endpoint)
    request = SdkRequest(
        method=method, schema=parts.scheme, host=host_header(endpoint), resource_path=path,
        query_params=list(params), header_params=headers, body=body,
    )
    signed = credentials.sign_request(request)
    return signed.header_params["Authorization"], signed.uri


def our_signature(
    method: str,
    endpoint: str,
    path: str,
    params: list[tuple[str, str]],
    body: bytes | None,
    content_type: str | None,
    project_id: str | None,
    security_token: str | None,
) -> requests.PreparedRequest:
    """The request as ``requests`` prepares it, with the headers of ``sign_request`` at the frozen instant."""
    headers = {"Content-Type": content_type} if content_type else {}
    prepared = requests.Request(
        method, endpoint + quote(path), params=params, data=body, headers=headers
    ).prepare()
    signed = sign_request(
        prepared.method, prepared.url, prepared.headers, prepared.body, AK, SK,
        project_id=project_id, security_token=security_token, now=FROZEN,
    )
    prepared.headers.update(signed)
    return prepared


TIME_PARAMS = [("start_time", "2026-11-01T00:00:00+0800"), ("end_time", "2026-11-30T23:59:59+0800")]
BODY = json.dumps({"name": "CreateMongoDB", "note": "ünïcödé +:&="}).encode()

MATRIX = [
    pytest.param("GET", JOBS_PATH, TIME_PARAMS + [("offset", "0"), ("limit", "100")], None, None,
                 PROJECT, None, id="get-jobs-plus-and-colon"),
    pytest.param("GET", JOBS_PATH, [("name", "Restore MongoDB Replica"), ("status", "Running")], None, None,
                 None, None, id="get-space-no-project"),
    pytest.param("GET", JOBS_PATH, [("name", "Réplica ジョブ"), ("id", "a/b?c#d")], None, None,
                 PROJECT, "temporary-security-token-XYZ", id="get-non-ascii-security-token"),
    pytest.param("GET", JOBS_PATH, [("b", "2"), ("a", "2"), ("a", "1"), ("empty", "")], None, None,
                 PROJECT, None, id="get-repeated-and-empty-values"),
    pytest.param("GET", "/v3.1/" + PROJECT + "/jobs/", [], None, None,
                 PROJECT, None, id="get-trailing-slash-no-query"),
    pytest.param("GET", "/v3/über space~tilde/jobs", [("q", "~tilde*star'quote()")], None, None,
                 None, "tok", id="get-encoded-path-segments"),
    pytest.param("POST", "/v3/auth/tokens", [], b"", "application/json",
                 PROJECT, None, id="post-empty-body"),
    pytest.param("POST", JOBS_PATH, TIME_PARAMS, BODY, "application/json;charset=UTF-8",
                 PROJECT, "temporary-security-token-XYZ", id="post-json-body-security-token"),
    pytest.param("POST", JOBS_PATH, [], BODY, "application/json", None, None, id="post-json-no-project"),
]


@pytest.mark.parametrize("method,path,params,body,content_type,project_id,security_token", MATRIX)
def test_authorization_equals_reference_signer(method, path, params, body, content_type, project_id,
                                                security_token):
    expected, expected_uri = reference_signature(method, ENDPOINT, path, params, body, content_type,
                                                 project_id, security_token)
    prepared = our_signature(method, ENDPOINT, path, params, body, content_type, project_id, security_token)

    assert prepared.headers["Authorization"] == expected
    assert prepared.headers["X-Sdk-Date"] == SDK_DATE
    assert prepared.headers.get("X-Project-Id") == project_id
    assert prepared.headers.get("X-Security-Token") == security_token
    assert expected.startswith(f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8443", "https://dds.example.test:443",
                                      "http://localhost:80", "https://[::1]:9000"])
def test_host_with_and_without_port_equals_reference(endpoint):
    params = TIME_PARAMS
    expected, _ = reference_signature("GET", endpoint, JOBS_PATH, params, None, None, PROJECT, None)
    prepared = our_signature("GET", endpoint, JOBS_PATH, params, None, None, PROJECT, None)
    assert prepared.headers["Authorization"] == expected


def test_aksk_auth_sends_the_reference_sdks_canonical_query():
    """The query AkSkAuth sends is the one it signed, in the SDK's form (`+` as %2B, space as %20)."""
    params = TIME_PARAMS + [("name", "Restore MongoDB")]
    _, expected_uri = reference_signature("GET", ENDPOINT, JOBS_PATH, params, None, None, PROJECT, None)
    prepared = requests.Request("GET", ENDPOINT + JOBS_PATH, params=params).prepare()
    AkSkAuth(AK, SK, project_id=PROJECT)(prepared)
    parts = urlsplit(prepared.url)
    assert f"{parts.path}?{parts.query}" == expected_uri
    assert "%2B0800" in parts.query and "Restore%20MongoDB" in parts.query


def test_aksk_auth_signature_equals_pure_function_at_the_same_instant():
    prepared = requests.Request("GET", ENDPOINT + JOBS_PATH, params=TIME_PARAMS).prepare()
    AkSkAuth(AK, SK, project_id=PROJECT)(prepared)
    instant = datetime.strptime(prepared.headers["X-Sdk-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    again = sign_request("GET", prepared.url, {}, None, AK, SK, project_id=PROJECT, now=instant)
    assert prepared.headers["Authorization"] == again["Authorization"]


def test_different_secret_or_instant_changes_the_signature():
    base = sign_request("GET", ENDPOINT + JOBS_PATH, {}, None, AK, SK, now=FROZEN)
    other_key = sign_request("GET", ENDPOINT + JOBS_PATH, {}, None, AK, SK + "x", now=FROZEN)
    later = sign_request("GET", ENDPOINT + JOBS_PATH, {}, None, AK, SK,
                         now=FROZEN.replace(second=7))
    assert len({base["Authorization"], other_key["Authorization"], later["Authorization"]}) == 3


@pytest.mark.parametrize("ak,sk", [("", SK), (AK, ""), (None, SK)])
def test_missing_key_is_a_clear_error_without_the_secret(ak, sk):
    with pytest.raises(ValueError, match="access key .* secret key .* non-empty") as caught:
        sign_request("GET", ENDPOINT + JOBS_PATH, {}, None, ak, sk, now=FROZEN)
    assert SK not in str(caught.value)


query_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
# "." and ".." are left to test_dot_segments_sign_the_path_sent: requests removes them before sending (RFC 3986
# section 5.2.4), so the path on the wire differs from the one handed to the reference signer.
segment_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/%?#"), min_size=1,
                       max_size=10).filter(lambda segment: segment not in (".", ".."))


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    segments=st.lists(segment_text, min_size=1, max_size=4),
    params=st.lists(st.tuples(query_text, query_text), max_size=5),
    body=st.one_of(st.none(), st.binary(max_size=64)),
    project_id=st.one_of(st.none(), st.sampled_from([PROJECT, "p-1"])),
    security_token=st.one_of(st.none(), st.sampled_from(["sts-token", "a+b/c=="])),
)
def test_any_request_signs_like_the_reference(method, segments, params, body, project_id, security_token):
    path = "/" + "/".join(segments)
    content_type = "application/json" if body else None
    expected, _ = reference_signature(method, ENDPOINT, path, params, body, content_type, project_id,
                                      security_token)
    prepared = our_signature(method, ENDPOINT, path, params, body, content_type, project_id, security_token)
    assert prepared.headers["Authorization"] == expected


@pytest.mark.parametrize("path,sent", [("/a/./b", "/a/b"), ("/a/..", "/"), ("/.", "/"), ("/a/../b", "/b"),
                                       ("/x./..y", "/x./..y")])
def test_dot_segments_sign_the_path_sent(path, sent):
    """requests removes dot segments before sending, and the gateway checks the signature over the path it receives:
    ours is the reference's signature of that path, never of the path as written."""
    prepared = our_signature("GET", ENDPOINT, path, [], None, None, PROJECT, None)
    assert urlsplit(prepared.url).path == sent
    expected, _ = reference_signature("GET", ENDPOINT, sent, [], None, None, PROJECT, None)
    assert prepared.headers["Authorization"] == expected
