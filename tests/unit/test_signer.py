"""SDK-HMAC-SHA256: the fact sheet's three vectors, and a cross-check against the official
SDK's Signer (only ``huaweicloudsdkcore.signer.signer`` and ``sdk_request`` are imported, with
HOME in a temp dir: other SDK modules write ``$HOME/.huaweicloud/application_id``)."""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from downloader.api.signer import canonical_query, canonical_uri, parse_authorization, sign

AK = "AKEXAMPLE0000000TEST"
SK = "SKEXAMPLEsecretkey0000000000000000000000"
P = "0123456789abcdef0123456789abcdef"
HOST = "rds.ap-southeast-1.myhuaweicloud.com"
DATE = "20240101T000000Z"


def test_vector_1_backup_files() -> None:
    out = sign(
        method="GET",
        host=HOST,
        path=f"/v3/{P}/backup-files",
        query=[("backup_id", "2f4ddb93-b901-4b08-93d8-1d2e472f30fe")],
        headers={"Content-Type": "application/json", "X-Project-Id": P, "X-Sdk-Date": DATE},
        body=b"",
        ak=AK,
        sk=SK,
    )
    assert out["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE0000000TEST, "
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=88ddbebd41da531f66e0bf65066df34cb49c74821038b09a2a5ee140460d9342"
    )
    assert out["Host"] == HOST
    assert canonical_uri(f"/v3/{P}/backup-files") == f"/v3/{P}/backup-files/"


def test_vector_2_list_with_security_token() -> None:
    query = [
        ("instance_id", "43e4feaab48f11e89039fa163ebaa7e4in01"),
        ("backup_type", "auto"),
        ("begin_time", "2024-01-01T00:00:00+0800"),
        ("end_time", "2024-01-02T00:00:00+0800"),
        ("offset", "0"),
        ("limit", "100"),
    ]
    out = sign(
        method="GET",
        host=HOST,
        path=f"/v3/{P}/backups",
        query=query,
        headers={
            "Content-Type": "application/json",
            "X-Project-Id": P,
            "X-Security-Token": "TEMPTOKEN-EXAMPLE",
            "X-Sdk-Date": DATE,
        },
        body=b"",
        ak=AK,
        sk=SK,
    )
    assert out["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE0000000TEST, "
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date;x-security-token, "
        "Signature=9e485bbf5ada9727649280f5f70f680710538fd7e3ef1d1b2d34a95e17f8bd89"
    )
    assert canonical_query(query) == (
        "backup_type=auto&begin_time=2024-01-01T00%3A00%3A00%2B0800"
        "&end_time=2024-01-02T00%3A00%3A00%2B0800"
        "&instance_id=43e4feaab48f11e89039fa163ebaa7e4in01&limit=100&offset=0"
    )


def test_vector_3_post_port_underscore_duplicates() -> None:
    query = [("z", "x y"), ("a", "2"), ("a", "1"), ("e", "")]
    out = sign(
        method="POST",
        host="127.0.0.1:8080",
        path="/v3/p1/a b~c/",
        query=query,
        headers={
            "Content-Type": "application/json;charset=UTF-8",
            "X_Ignored": "v",
            "X-Sdk-Date": DATE,
        },
        body=b'{"k":"v"}',
        ak="AK",
        sk="SK",
    )
    assert canonical_uri("/v3/p1/a b~c/") == "/v3/p1/a%20b~c/"
    assert canonical_query(query) == "a=1&a=2&e=&z=x%20y"
    parsed = parse_authorization(out["Authorization"])
    assert parsed == (
        "AK",
        ["content-type", "host", "x-sdk-date"],
        "9bb070bd1cbdae4a463945046ef21f5a187ee62edfe548b3549673fc9b424b05",
    )


# ------------------------------------------------------------------------- SDK cross-check


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("home")
    mp.setenv("HOME", str(home))
    mp.setenv("USERPROFILE", str(home))
    try:
        signer_mod = importlib.import_module("huaweicloudsdkcore.signer.signer")
        request_mod = importlib.import_module("huaweicloudsdkcore.sdk_request")
    finally:
        mp.undo()
    assert not (home / ".huaweicloud").exists(), "the SDK wrote into HOME on import"
    return signer_mod, request_mod


def sdk_sign(
    sdk: tuple[ModuleType, ModuleType],
    *,
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
) -> tuple[dict[str, Any], str]:
    signer_mod, request_mod = sdk
    req = request_mod.SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    signer_mod.Signer(SimpleNamespace(ak=ak, sk=sk)).sign(req)
    return req.header_params, req.uri


def ours_sign(
    *,
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
) -> dict[str, str]:
    return sign(
        method=method, host=host, path=path, query=query, headers=headers, body=body, ak=ak, sk=sk
    )


CASES: list[dict[str, Any]] = [
    {"query": [("backup_id", "abc")]},
    {"query": [("q", "a b c"), ("plus", "1+1=2"), ("t", "2024-01-01T00:00:00+08:00")]},
    {"query": [("path", "/a/b/c"), ("tilde", "~x~"), ("empty", "")]},
    {"query": [("ü", "日本語"), ("emoji", "😀"), ("pct", "100%")]},
    {"query": [("dup", "b"), ("dup", "a"), ("dup", "a"), ("A", "z"), ("a", "Z")]},
    {"query": [("reserved", "!*'();:@&=+$,/?#[]"), ("x", "-_.")]},
    {"query": [], "path": "/v3/p 1/a b/c~d"},
    {"query": [("x", "1")], "path": "/v3/p%201/x%2Fy"},
    {"query": [("x", "1")], "path": "/"},
    {"query": [("x", "1")], "security_token": "TEMP/TOKEN+with=chars"},
    {"query": [("x", "1")], "host": "127.0.0.1:8443"},
    {"query": [("x", "1")], "host": "[::1]:9000"},
    {"query": [], "method": "POST", "body": b'{"auth":"\xc3\xa9"}'},
    {"query": [], "headers": {"X_Under": "skipped", "User-Agent": "ua/1.0  "}},
    {"query": [], "headers": {"Content-Type": "application/octet-stream"}, "body": b"data"},
]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_matches_official_sdk(sdk: tuple[ModuleType, ModuleType], case: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json", "X-Project-Id": P, "X-Sdk-Date": DATE}
    headers.update(case.get("headers", {}))
    if "security_token" in case:
        headers["X-Security-Token"] = case["security_token"]
    kwargs: dict[str, Any] = {
        "method": case.get("method", "GET"),
        "host": case.get("host", HOST),
        "path": case.get("path", f"/v3/{P}/backup-files"),
        "query": case["query"],
        "headers": headers,
        "body": case.get("body", b""),
        "ak": AK,
        "sk": SK,
    }
    theirs, uri = sdk_sign(sdk, **kwargs)
    ours = ours_sign(**kwargs)
    assert ours["Authorization"] == theirs["Authorization"]
    # The query we send is the canonical query, exactly as the SDK sends it.
    expected_qs = canonical_query(case["query"])
    assert uri == kwargs["path"] + (f"?{expected_qs}" if expected_qs else "")


def test_empty_body_with_non_json_content_type_matches_sdk(
    sdk: tuple[ModuleType, ModuleType],
) -> None:
    """For an empty body the SDK hashes the empty payload even when it set
    ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD``; so do we."""
    kwargs: dict[str, Any] = {
        "method": "GET",
        "host": HOST,
        "path": "/x",
        "query": [],
        "headers": {"Content-Type": "text/plain", "X-Sdk-Date": DATE},
        "body": b"",
        "ak": AK,
        "sk": SK,
    }
    theirs, _ = sdk_sign(sdk, **kwargs)
    ours = ours_sign(**kwargs)
    assert ours["Authorization"] == theirs["Authorization"]


_text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=st.lists(st.tuples(_text, _text), max_size=6),
    segments=st.lists(_text.filter(lambda s: "/" not in s), min_size=1, max_size=4),
    token=st.none() | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    port=st.none() | st.integers(1, 65535),
    body=st.binary(max_size=64),
)
def test_matches_official_sdk_property(
    sdk: tuple[ModuleType, ModuleType],
    query: list[tuple[str, str]],
    segments: list[str],
    token: str | None,
    port: int | None,
    body: bytes,
) -> None:
    headers = {"Content-Type": "application/json", "X-Project-Id": P, "X-Sdk-Date": DATE}
    if token is not None:
        headers["X-Security-Token"] = token
    kwargs: dict[str, Any] = {
        "method": "GET",
        "host": HOST if port is None else f"{HOST}:{port}",
        "path": "/" + "/".join(segments),
        "query": query,
        "headers": headers,
        "body": body,
        "ak": AK,
        "sk": SK,
    }
    theirs, _ = sdk_sign(sdk, **kwargs)
    assert ours_sign(**kwargs)["Authorization"] == theirs["Authorization"]
