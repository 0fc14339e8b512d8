from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from downloader.text.redact import REDACTOR, RedactingFilter, Redactor, register_secret, safe_url

AK = "HPUAZXKQ3TESTACCESSKEY"
SK = "sk0123456789abcdefSECRET"
TOKEN = "gQpjbi1ub3J0aC00TOKENVALUE"

OBS_V2 = (
    "https://rdsbucket.obs.ap-southeast-1.myhuaweicloud.com/backups/a%20b/x.qp"
    f"?AccessKeyId={AK}&Expires=1764135600&Signature=aB3%2Bc%2Fd%3D"
    f"&x-obs-security-token={TOKEN}"
)
S3_V2 = (
    "https://obs.example.com/rdsbucket.username.1/x.qp"
    f"?x-amz-security-token={TOKEN}&AWSAccessKeyId={AK}&Expires=1764135600"
    "&Signature=zZz%2B%3D"
)
V4 = (
    "https://rdsbucket.obs.cn-north-4.myhuaweicloud.com/x.qp"
    f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={AK}%2F20261126%2Fcn-north-4"
    "%2Fs3%2Faws4_request&X-Amz-Date=20261126T054000Z&X-Amz-Expires=900"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=0123abcdef"
)


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.add(SK)
    return r


@pytest.fixture
def global_secret() -> Iterator[None]:
    register_secret(SK)
    yield
    REDACTOR.clear()


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        (OBS_V2, "https://rdsbucket.obs.ap-southeast-1.myhuaweicloud.com/backups/a%20b/x.qp"),
        (S3_V2, "https://obs.example.com/rdsbucket.username.1/x.qp"),
        (V4, "https://rdsbucket.obs.cn-north-4.myhuaweicloud.com/x.qp"),
    ],
)
def test_presigned_urls_lose_their_query(redactor: Redactor, url: str, kept: str) -> None:
    text = f"GET {url} failed: 403"
    out = redactor.redact(text)
    assert out == f"GET {kept}?<redacted> failed: 403"
    for secret in (AK, TOKEN, "Signature", "aB3", "0123abcdef"):
        assert secret not in out
    assert safe_url(url) == f"{kept}?<redacted>"


def test_url_inside_reprs_and_quotes(redactor: Redactor) -> None:
    for wrapped in (f"URL('{V4}')", f'"{OBS_V2}"', f"<{S3_V2}>", f"({V4})"):
        out = redactor.redact(wrapped)
        assert AK not in out and TOKEN not in out and "X-Amz-Signature" not in out
        assert "?<redacted>" in out


def test_plain_query_is_kept(redactor: Redactor) -> None:
    text = "see https://support.example.com/page?lang=en&id=3 for help"
    assert redactor.redact(text) == text


def test_loose_signature_params(redactor: Redactor) -> None:
    out = redactor.redact(f"query was Signature=abcd%2B&AccessKeyId={AK}&x=1")
    assert AK not in out and "abcd" not in out
    assert "x=1" in out


def test_headers(redactor: Redactor) -> None:
    lines = [
        f"Authorization: SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, "
        "Signature=deadbeef",
        f"X-Auth-Token: {TOKEN}",
        f"x-security-token:{TOKEN}",
        f"X-Subject-Token: {TOKEN}",
    ]
    out = redactor.redact("\n".join(lines))
    assert AK not in out and TOKEN not in out and "deadbeef" not in out
    assert out.splitlines() == [
        "Authorization: ***",
        "X-Auth-Token: ***",
        "x-security-token:***",
        "X-Subject-Token: ***",
    ]
    as_dict = repr({"Authorization": f"SDK-HMAC-SHA256 Access={AK}", "X-Auth-Token": TOKEN})
    out = redactor.redact(as_dict)
    assert out == "{'Authorization': '***', 'X-Auth-Token': '***'}"


def test_sdk_hmac_access_outside_a_header(redactor: Redactor) -> None:
    out = redactor.redact(f"signed with SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host")
    assert AK not in out
    assert "SDK-HMAC-SHA256 Access=***, SignedHeaders=host" in out


def test_registered_secrets(redactor: Redactor) -> None:
    assert redactor.redact(f"sk is {SK}!") == "sk is ***!"
    redactor.add("a/b+c=" * 2)
    assert redactor.redact("tok a%2Fb%2Bc%3Da%2Fb%2Bc%3D end") == "tok *** end"
    redactor.add("")
    redactor.add("abc")  # too short: would shred ordinary text
    assert redactor.redact("abc abcd") == "abc abcd"


@pytest.mark.parametrize("secret", ['zq"xy-42', "zq\\xy\\w", "zqäxö-€", 'zq/x"\\é-0'])
def test_registered_secrets_in_json_escaped_echoes(redactor: Redactor, secret: str) -> None:
    # A request echoed back in JSON, and that JSON quoted inside another JSON string.
    redactor.add(secret)
    body = json.dumps({"password": secret})
    for text in (
        body,
        json.dumps(body),
        json.dumps({"password": secret}, ensure_ascii=False),
        json.dumps(json.dumps({"password": secret}, ensure_ascii=False), ensure_ascii=False),
        body.replace("/", "\\/"),
    ):
        assert "zq" not in redactor.redact(text), text


def test_userinfo(redactor: Redactor) -> None:
    assert redactor.redact("https://user:pw@host/x") == "https://***@host/x"
    assert safe_url("https://user:pw@host:8443/x") == "https://host:8443/x"


def test_safe_url_shapes() -> None:
    assert safe_url("https://h/p") == "https://h/p"
    assert safe_url("https://h/p?a=1#frag") == "https://h/p?<redacted>"
    assert safe_url("/relative?Signature=x") == "/relative?<redacted>"
    assert safe_url("http://[::1]:80/x?y") == "http://[::1]:80/x?<redacted>"


def _logger(stream: io.StringIO) -> logging.Logger:
    logger = logging.getLogger("rds_backup.test_redact")
    logger.handlers.clear()
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger


@pytest.mark.usefixtures("global_secret")
def test_filter_redacts_args_and_fields() -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    logger.warning("GET %s with key %s (%d)", V4, SK, 3, extra={"fields": {"url": OBS_V2, "n": 1}})
    out = stream.getvalue()
    assert AK not in out and SK not in out and TOKEN not in out
    assert "with key *** (3)" in out


@pytest.mark.usefixtures("global_secret")
def test_filter_redacts_tracebacks() -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    try:
        raise RuntimeError(f"boom {S3_V2} secret={SK}")
    except RuntimeError:
        logger.exception("download failed for %s", OBS_V2)
    out = stream.getvalue()
    assert "Traceback" in out and "RuntimeError: boom" in out
    assert AK not in out and SK not in out and TOKEN not in out


@pytest.mark.usefixtures("global_secret")
def test_filter_survives_bad_format_string() -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    logger.error("broken %d", SK)
    out = stream.getvalue()
    assert SK not in out and "broken" in out
