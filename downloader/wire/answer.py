"""What one ranged GET sends and what its answer means. Pure: no I/O.

What is sent: the presigned link byte for byte (libcurl with ``PATH_AS_IS``; yarl would
otherwise turn ``%2F`` in the signature into ``/``), GET only (the method is signed: HEAD
fails), ``Range``, ``If-Match`` and ``Accept-Encoding: identity``, and nothing the
signature covers (``Content-Type``, ``Content-MD5``, ``x-obs-*``) nor the API's own
credentials.

What is checked (OBS ignores an invalid Range and answers 200 with the whole object; a
Range starting past the end answers 416): every answer is classified by
:func:`classify` before a byte is written, and 206 answers must carry exactly the
``Content-Range`` asked for, of the object we are fetching, with a ``Content-Length`` that
agrees with it (a chunked 206 has none: refused, since a body running past its range would
be cut to size); an answer in any coding but identity is BAD (retried, then the file
fails): its bytes are never written. :mod:`downloader.wire.transfer` does the I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from downloader.models import sendable_etag
from downloader.ranges import parse_content_range
from downloader.wire.httpdates import http_date, retry_after_seconds

REQUEST_ID_HEADERS = ("x-obs-request-id", "x-amz-request-id", "x-request-id")


class Kind(enum.Enum):
    PARTIAL = "partial"  # 206 with the Content-Range asked for
    WHOLE = "whole"  # 200: the server ignored Range
    EMPTY = "empty"  # 416 on a zero-byte object
    PAST_END = "past_end"  # 416 on a non-empty object: our idea of the size is wrong
    CHANGED = "changed"  # 412, or an ETag that differs from the one we started with
    REFUSED = "refused"  # 403: expired or bad link
    GONE = "gone"  # 404
    RETRY = "retry"  # 429, 5xx: try again after a pause
    BAD = "bad"  # anything else, or a 206 that is not what we asked for


@dataclass(frozen=True, slots=True)
class Answer:
    kind: Kind
    status: int
    start: int | None = None  # first byte of the body (206)
    end: int | None = None  # one past the last byte of the body
    total: int | None = None  # object size
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None
    request_id: str | None = None
    date: datetime | None = None
    crc64: int | None = None  # the object's CRC-64/XZ, when the answer carries it
    detail: str = ""
    code: str | None = None  # the error body's <Code>, for a refused link

    @property
    def has_body(self) -> bool:
        """The answer carries object bytes (206, or a 200 that ignored Range)."""
        return self.kind is Kind.PARTIAL or self.kind is Kind.WHOLE

    @property
    def whole(self) -> bool:
        """The body is the entire object (a checksum header then describes these bytes)."""
        return self.start == 0 and self.end is not None and self.end == self.total


def request_headers(start: int, end: int | None, etag: str | None) -> dict[str, str]:
    """Headers for bytes ``[start, end)`` (``end`` None: to the end of the object)."""
    last = "" if end is None else str(end - 1)
    # identity: the object's own bytes, which Content-Range counts and the store's checksums
    # describe; a coded body (RFC 9110 section 8.4) would be neither.
    headers = {"Range": f"bytes={start}-{last}", "Accept-Encoding": "identity"}
    if etag:
        headers["If-Match"] = etag
    return headers


def _crc64(headers: Mapping[str, str]) -> int | None:
    """``x-obs-checksum-crc64ecma`` (or its ``x-amz-`` twin): decimal, as esdk-obs-python
    compares it."""
    value = headers.get("x-obs-checksum-crc64ecma") or headers.get("x-amz-checksum-crc64ecma")
    if value is None or not value.strip().isdigit():
        return None
    crc = int(value)
    return crc if crc < 2**64 else None


def _shown(value: str) -> str:
    """A header value fit for a message: short, printable ASCII only (it is untrusted)."""
    return re.sub(r"[^ -~]", "?", value[:40])


def _coding(headers: Mapping[str, str]) -> str | None:
    """The answer's ``Content-Encoding`` unless it is none or ``identity``."""
    value = headers.get("Content-Encoding", "").strip()
    return None if value.lower() in ("", "identity") else _shown(value)


def error_code(body: bytes) -> str | None:
    """The ``<Code>`` of an OBS/S3 XML error body, without an XML parser (bodies are small
    and untrusted)."""
    m = re.search(rb"<Code>([A-Za-z0-9_.-]{1,64})</Code>", body[:4096])
    return m.group(1).decode() if m else None


def classify(
    status: int,
    headers: Mapping[str, str],
    *,
    start: int,
    end: int | None,
    expect_etag: str | None,
    expect_total: int | None,
) -> Answer:
    """Decide what an answer to ``request_headers(start, end, expect_etag)`` means. Pure.

    ``headers`` is looked up case-insensitively (:class:`downloader.wire.curlget.Headers`)."""
    request_id = next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), None)
    etag = headers.get("ETag")
    base = Answer(
        Kind.BAD,
        status,
        etag=etag,
        last_modified=headers.get("Last-Modified"),
        request_id=request_id,
        date=http_date(headers.get("Date")),
        crc64=_crc64(headers),
    )

    def answer(kind: Kind, **kw: Any) -> Answer:
        return replace(base, kind=kind, **kw)

    if status in (200, 206) and etag is not None and not sendable_etag(etag):
        # It could never be sent back as If-Match: no identity to pin the file's ranges to.
        return replace(base, etag=None, detail=f"ETag {_shown(etag)} holds a control character")
    if status == 206:
        a, b, total = parse_content_range(headers.get("Content-Range"))
        if a is None or b is None or total is None:
            return answer(Kind.BAD, detail="206 without a usable Content-Range")
        if expect_etag and etag and etag != expect_etag:
            return answer(Kind.CHANGED, detail="ETag changed", total=total)
        if expect_total is not None and total != expect_total:
            return answer(Kind.CHANGED, detail=f"object size changed to {total}", total=total)
        want_last = (total - 1) if end is None else min(end, total) - 1
        if a != start or b != want_last:
            return answer(
                Kind.BAD, detail=f"asked for bytes {start}-{want_last}, got {a}-{b}", total=total
            )
        if coding := _coding(headers):
            return answer(Kind.BAD, detail=f"Content-Encoding {coding}", total=total)
        length = headers.get("Content-Length")
        if length is None:
            # A chunked body: where it ends is known only once it has ended, and a body
            # that runs past the range would be cut to size by whoever reads it. Both
            # transports refuse it here, before a byte is taken.
            return answer(
                Kind.BAD,
                detail=f"206 for bytes {a}-{b} without a Content-Length (a chunked body)",
                total=total,
            )
        if length.strip() != str(b - a + 1):
            # Which one lies is unknown: taking the range's bytes of a longer body, or
            # waiting for bytes a shorter one never sends, would both trust a liar.
            return answer(
                Kind.BAD,
                detail=f"Content-Length {_shown(length.strip())} disagrees with "
                f"Content-Range bytes {a}-{b}",
                total=total,
            )
        return answer(Kind.PARTIAL, start=a, end=b + 1, total=total)
    if status == 200:
        length = headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if expect_etag and etag and etag != expect_etag:
            return answer(Kind.CHANGED, detail="ETag changed", total=total)
        if coding := _coding(headers):
            # Before the size: Content-Length then counts the coded bytes, not the object's.
            return answer(Kind.BAD, detail=f"Content-Encoding {coding}")
        if total is None:
            return answer(Kind.BAD, detail="200 without Content-Length")
        if expect_total is not None and total != expect_total:
            return answer(Kind.CHANGED, detail=f"object size changed to {total}", total=total)
        return answer(Kind.WHOLE, start=0, end=total, total=total)
    if status == 416:
        _, _, total = parse_content_range(headers.get("Content-Range"))
        if expect_total is not None and total is not None and total != expect_total:
            return answer(Kind.CHANGED, total=total, detail=f"object size changed to {total}")
        if (total == 0 or (total is None and expect_total in (None, 0))) and start == 0:
            return answer(Kind.EMPTY, total=0)
        return answer(Kind.PAST_END, total=total, detail="range not satisfiable")
    if status == 412:
        return answer(Kind.CHANGED, detail="the object changed (412 Precondition Failed)")
    if status in (401, 403):
        return answer(Kind.REFUSED, detail="link refused")
    if status == 404:
        return answer(Kind.GONE, detail="object not found (404)")
    if status == 429 or status >= 500:
        return answer(
            Kind.RETRY,
            retry_after=retry_after_seconds(headers.get("Retry-After"), now=datetime.now(UTC)),
            detail=f"server busy ({status})",
        )
    return answer(Kind.BAD, detail=f"unexpected HTTP {status}")
