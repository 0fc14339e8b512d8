"""downloader.wire.transfer's pure half: the request headers of a ranged GET and the verdict
on each answer (classify)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from downloader.disk.digest import Crc64
from downloader.disk.hashing import is_plain_md5_etag
from downloader.wire.answer import Kind, classify, request_headers


def headers(**kw: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()}))


def test_request_headers() -> None:
    identity = {"Accept-Encoding": "identity"}
    assert request_headers(0, 10, None) == {"Range": "bytes=0-9", **identity}
    assert request_headers(5, None, '"e"') == {
        "Range": "bytes=5-",
        "If-Match": '"e"',
        **identity,
    }


def test_206_must_be_what_was_asked() -> None:
    ok = classify(
        206,
        headers(Content_Range="bytes 10-19/100", Content_Length="10", ETag='"a"'),
        start=10,
        end=20,
        expect_etag='"a"',
        expect_total=100,
    )
    assert ok.kind is Kind.PARTIAL and (ok.start, ok.end, ok.total) == (10, 20, 100)
    clamped = classify(
        206,
        headers(Content_Range="bytes 90-99/100", Content_Length="10"),
        start=90,
        end=200,
        expect_etag=None,
        expect_total=None,
    )
    assert clamped.kind is Kind.PARTIAL and clamped.end == 100
    wrong = classify(
        206,
        headers(Content_Range="bytes 0-9/100"),
        start=10,
        end=20,
        expect_etag=None,
        expect_total=100,
    )
    assert wrong.kind is Kind.BAD
    other = classify(
        206,
        headers(Content_Range="bytes 10-19/100", ETag='"b"'),
        start=10,
        end=20,
        expect_etag='"a"',
        expect_total=100,
    )
    assert other.kind is Kind.CHANGED
    resized = classify(
        206,
        headers(Content_Range="bytes 10-19/101"),
        start=10,
        end=20,
        expect_etag=None,
        expect_total=100,
    )
    assert resized.kind is Kind.CHANGED


@pytest.mark.parametrize(
    ("length", "kind"),
    [("10", Kind.PARTIAL), (None, Kind.BAD), ("5", Kind.BAD), ("11", Kind.BAD)],
)
def test_206_content_length_must_agree_with_content_range(length: str | None, kind: Kind) -> None:
    """A shorter body would be waited for, a longer one cut to the range: either way the
    answer says two things, and one of them is false. Retried, never taken. Without a
    Content-Length (chunked), a body past the range could only be cut: refused too."""
    hdrs = {"Content_Range": "bytes 10-19/100"}
    if length is not None:
        hdrs["Content_Length"] = length
    ans = classify(206, headers(**hdrs), start=10, end=20, expect_etag=None, expect_total=100)
    assert ans.kind is kind
    assert ans.has_body is (kind is Kind.PARTIAL)
    if kind is Kind.BAD:
        assert f"Content-Length {length}" in ans.detail or "without a Content-Length" in ans.detail


@pytest.mark.parametrize("coding", ["gzip", "br", "GZIP", "identity, gzip", "x-\x1b[2J"])
@pytest.mark.parametrize("status", [200, 206])
def test_an_answer_in_any_coding_but_identity_is_bad(status: int, coding: str) -> None:
    """The bytes of a coded body are not the object's: never written, whatever they say."""
    hdrs = {"Content_Length": "10", "Content_Encoding": coding}
    if status == 206:
        hdrs["Content_Range"] = "bytes 0-9/10"
    ans = classify(status, headers(**hdrs), start=0, end=10, expect_etag=None, expect_total=10)
    assert ans.kind is Kind.BAD and not ans.has_body
    assert ans.detail.startswith("Content-Encoding ")
    assert "\x1b" not in ans.detail  # the untrusted value is shown scrubbed
    plain = classify(
        status,
        headers(**{**hdrs, "Content_Encoding": " Identity "}),
        start=0,
        end=10,
        expect_etag=None,
        expect_total=10,
    )
    assert plain.kind in (Kind.WHOLE, Kind.PARTIAL)


def test_a_coded_whole_answer_is_bad_not_a_changed_object() -> None:
    """A gzip body's Content-Length counts the coded bytes: that is no new object size (a
    restart), it is an answer not to take."""
    ans = classify(
        200,
        headers(Content_Length="7", Content_Encoding="gzip"),
        start=0,
        end=None,
        expect_etag=None,
        expect_total=100,
    )
    assert ans.kind is Kind.BAD


@pytest.mark.parametrize(
    ("status", "hdrs", "kind"),
    [
        (200, {"Content_Length": "100"}, Kind.WHOLE),
        (200, {}, Kind.BAD),
        (416, {"Content_Range": "bytes */0"}, Kind.EMPTY),
        (416, {"Content_Range": "bytes */50"}, Kind.PAST_END),
        (412, {}, Kind.CHANGED),
        (403, {}, Kind.REFUSED),
        (404, {}, Kind.GONE),
        (429, {"Retry_After": "3"}, Kind.RETRY),
        (503, {}, Kind.RETRY),
        (400, {}, Kind.BAD),
    ],
)
def test_classify_statuses(status: int, hdrs: dict[str, str], kind: Kind) -> None:
    answer = classify(status, headers(**hdrs), start=0, end=10, expect_etag=None, expect_total=None)
    assert answer.kind is kind
    if status == 429:
        assert answer.retry_after == 3.0


def test_request_id_is_kept() -> None:
    answer = classify(
        503, headers(x_obs_request_id="R1"), start=0, end=1, expect_etag=None, expect_total=None
    )
    assert answer.request_id == "R1"


def test_md5_shaped_etags() -> None:
    assert is_plain_md5_etag('"3b46eaf02d3b6b1206078bb86a7b7013"')
    assert not is_plain_md5_etag('"3b46eaf02d3b6b1206078bb86a7b7013-3"')
    assert not is_plain_md5_etag('"5f1e-1a2b"')
    assert not is_plain_md5_etag(None)


def test_crc64_is_the_xz_variant_obs_reports() -> None:
    crc = Crc64()
    crc.update(b"1234")
    crc.update(b"56789")
    assert crc.value == 0x995DC9BBDF1939FA  # CRC-64/XZ check value of "123456789"
    whole = classify(
        200,
        headers(Content_Length="9", x_obs_checksum_crc64ecma=str(crc.value)),
        start=0,
        end=None,
        expect_etag=None,
        expect_total=None,
    )
    assert whole.whole and whole.crc64 == crc.value
    part = classify(
        206,
        headers(Content_Range="bytes 0-3/9", x_obs_checksum_crc64ecma="1"),
        start=0,
        end=4,
        expect_etag=None,
        expect_total=None,
    )
    assert not part.whole


@pytest.mark.parametrize("etag", ['"a\x01b"', '"a\x7fb"', '"a\tb"', '"\x1b]0;x\x07"', '"a\x85"'])
@pytest.mark.parametrize("status", [200, 206])
def test_an_etag_that_cannot_be_sent_back_is_bad(status: int, etag: str) -> None:
    hdrs = headers(ETag=etag, Content_Range="bytes 0-9/10", Content_Length="10")
    answer = classify(status, hdrs, start=0, end=10, expect_etag=None, expect_total=None)
    assert answer.kind is Kind.BAD
    assert answer.etag is None  # never learned, never sent as If-Match
    assert "control character" in answer.detail
    assert not any(c < " " or "\x7f" <= c <= "\x9f" for c in answer.detail)


def test_plain_and_weak_etags_are_kept() -> None:
    for etag in ('"3f2a-2"', 'W/"x"', '"é"', ""):
        hdrs = headers(ETag=etag, Content_Range="bytes 0-9/10", Content_Length="10")
        answer = classify(206, hdrs, start=0, end=10, expect_etag=None, expect_total=None)
        assert answer.kind is Kind.PARTIAL and answer.etag == etag
