"""The simulated OBS object store behind the presigned ``download_link`` URLs.

Behaviour follows facts §5: V2 query auth checked on the raw query string, GET only, single
ranges with OBS's lenient rules (invalid -> 200 whole object, start past the end -> 416),
``If-Match`` -> 412, and the whole object's ETag on every answer. Faults come from
``sim.faults`` and are decided once per response before any byte is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote
from xml.sax.saxutils import escape

from aiohttp import web

from downloader.sim._http import http_date, obs_key, obs_request_id, obs_signature
from downloader.sim.faults import Faults, ObjectRequest

if TYPE_CHECKING:
    from downloader.sim.server import Simulator

PREFIX = "/obs/"
CHUNK = 512 * 1024
# Big files get their MD5 computed off the event loop; small ones are instant.
INLINE_DIGEST_LIMIT = 8 * 1024 * 1024
# Headers a presigned GET must not carry: OBS would put them in the string to sign.
FORBIDDEN = ("authorization", "x-auth-token", "content-type", "content-md5")
ERROR_CODES = {
    429: ("TooManyRequests", "Too many requests."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    502: ("InternalError", "Bad gateway."),
    503: ("ServiceUnavailable", "Service is unable to handle request."),
    504: ("InternalError", "Gateway timeout."),
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """A syntactically valid range that starts at or past the end of the object."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """OBS's reading of a ``Range`` header: (first, last) inclusive, or None for "whole".

    Raises :class:`Unsatisfiable` for a start at or past the end (416). Anything invalid
    (bad syntax, several ranges, end before start, ``-0``) is ignored, as OBS does.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return None
        if size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else None
    if end is not None and end < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, size - 1 if end is None else min(end, size - 1)


@dataclass(slots=True)
class _Plan:
    """What this one response will do wrong, decided before the first byte."""

    throttled: bool = False
    applies: bool = False  # body faults apply to this file
    reset_at: int | None = None
    stall_at: int | None = None
    stall_seconds: float = 0.0
    truncate_at: int | None = None


def _consume(faults: Faults, trigger: str, count: str) -> None:
    """Use up one firing of a counted fault; disarm it when its count runs out."""
    left: int = getattr(faults, count)
    if left < 0:
        return
    left -= 1
    if left <= 0:
        setattr(faults, trigger, None)
        left = 1
    setattr(faults, count, left)


def _armed(faults: Faults, trigger: str, count: str) -> bool:
    return getattr(faults, trigger) is not None and getattr(faults, count) != 0


class ObjectHandler:
    """aiohttp handler for ``/obs/{bucket}/{key}`` of one :class:`Simulator`."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._keys: dict[str, tuple[str, str]] = {
            obs_key(b.id, f.name): (b.id, f.name)
            for b in sim.store.backups.values()
            for f in b.files
        }
        self._change_armed = False
        self._served_since_armed: dict[tuple[str, str], int] = {}

    def add_routes(self, app: web.Application) -> None:
        # "*" so that aiohttp does not answer HEAD on its own: HEAD must fail like OBS.
        app.router.add_route("*", PREFIX + "{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        stats = self.sim.stats
        stats.object_requests += 1
        stats.object_active += 1
        stats.object_max_concurrent = max(stats.object_max_concurrent, stats.object_active)
        try:
            return await self._handle(request)
        finally:
            stats.object_active -= 1

    # --- answers ----------------------------------------------------------------------------

    def _log(self, request: web.Request, name: str | None, status: int) -> None:
        stats = self.sim.stats
        stats.object_status_counts[status] = stats.object_status_counts.get(status, 0) + 1
        get = request.headers.get
        stats.object_requests_log.append(
            ObjectRequest(name, get("Range"), get("If-Match"), status, get("Accept-Encoding"))
        )

    def _base_headers(self) -> dict[str, str]:
        rid = obs_request_id()
        return {
            "x-obs-request-id": rid,
            "x-obs-id-2": "32AAAQAAEAABAAAQAAEAABAAAQAAEAABCS" + rid[:8],
            "Date": http_date(self.sim.now()),
            "Server": "OBS",
        }

    def _xml_error(
        self,
        request: web.Request,
        name: str | None,
        status: int,
        code: str,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> web.Response:
        self._log(request, name, status)
        headers = self._base_headers()
        headers.update(extra or {})
        resource = request.raw_path.partition("?")[0][len(PREFIX) - 1 :]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"<Resource>{escape(resource)}</Resource>"
            f"<RequestId>{headers['x-obs-request-id']}</RequestId>"
            f"<HostId>{headers['x-obs-id-2']}</HostId></Error>"
        )
        return web.Response(
            status=status, text=body, content_type="application/xml", headers=headers
        )

    # --- the request ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sim = self.sim
        faults = sim.faults
        raw_path, _, raw_query = request.raw_path.partition("?")
        bucket_raw, _, key_raw = raw_path[len(PREFIX) :].partition("/")
        bucket, key = unquote(bucket_raw), unquote(key_raw)
        target = self._keys.get(key) if bucket == sim.bucket else None
        name = target[1] if target is not None else None

        def deny(status: int, code: str, message: str) -> web.Response:
            return self._xml_error(request, name, status, code, message)

        if request.method != "GET":
            # The method is part of the V2 string to sign; the link was signed for GET.
            return deny(403, "SignatureDoesNotMatch", _SIG_MSG)
        if any(h.lower() in FORBIDDEN or h.lower().startswith("x-obs-") for h in request.headers):
            sim.stats.forbidden_header_requests += 1
            return deny(403, "SignatureDoesNotMatch", _SIG_MSG)
        params: dict[str, str] = {}
        for part in raw_query.split("&"):
            k, _, v = part.partition("=")
            params.setdefault(k, v)
        ak, expires, signature = (
            params.get("AccessKeyId"),
            params.get("Expires"),
            params.get("Signature"),
        )
        if ak is None or expires is None or signature is None:
            return deny(403, "AccessDenied", "Anonymous access is forbidden for this operation")
        expected = obs_signature(sim.obs_sk, "GET", expires, bucket, key)
        if ak != sim.obs_ak or signature != expected:
            return deny(403, "SignatureDoesNotMatch", _SIG_MSG)
        try:
            expires_at = int(expires)
        except ValueError:
            return deny(403, "AccessDenied", "Invalid date (should be seconds since epoch)")
        if sim.now() > expires_at:
            return deny(403, "AccessDenied", "Request has expired")
        if faults.deny_objects:
            return deny(403, "AccessDenied", "Access Denied")
        if target is None:
            if bucket != sim.bucket:
                return deny(404, "NoSuchBucket", "The specified bucket does not exist")
            return deny(404, "NoSuchKey", "The specified key does not exist.")

        applies = faults.fault_files is None or name in faults.fault_files
        if applies and _armed(faults, "error_status", "error_count"):
            status = faults.error_status or 500
            _consume(faults, "error_status", "error_count")
            code, message = ERROR_CODES.get(status, ("InternalError", "Injected error."))
            if status == 503 and faults.retry_after is not None:
                code, message = "SlowDown", "Please reduce your request rate."
            extra = {}
            if faults.retry_after is not None:
                extra["Retry-After"] = str(max(0, round(faults.retry_after)))
            return self._xml_error(request, name, status, code, message, extra)

        return await self._serve(request, target[0], target[1], applies)

    async def _serve(
        self, request: web.Request, backup_id: str, name: str, applies: bool
    ) -> web.StreamResponse:
        sim = self.sim
        store = sim.store
        faults = sim.faults
        _, sim_file = store.lookup(backup_id, name)
        size = sim_file.size
        version = store.version(backup_id, name)
        etag = await self._etag(backup_id, name, version, size)
        if_match = request.headers.get("If-Match")
        if if_match is not None and not _etag_matches(if_match, etag):
            return self._xml_error(
                request,
                name,
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
        try:
            chosen = (
                None
                if (faults.ignore_range and applies)
                else parse_range(request.headers.get("Range"), size)
            )
        except Unsatisfiable:
            return self._xml_error(
                request,
                name,
                416,
                "InvalidRange",
                "The requested range cannot be satisfied",
                {"Content-Range": f"bytes */{size}"},
            )
        headers = self._base_headers()
        headers.update(
            {
                "ETag": etag,
                "Accept-Ranges": "bytes",
                "Last-Modified": http_date(store.last_modified(backup_id, name, version)),
                "Content-Type": "binary/octet-stream",
            }
        )
        if chosen is None or (chosen[0] == 0 and chosen[1] == size - 1):
            # Like OBS, a whole-object answer may carry the object's CRC-64 (ECMA-182 as
            # OBS computes it: CRC-64/XZ), in decimal.
            crc = store.digests(backup_id, name, version).crc64
            headers["x-obs-checksum-crc64ecma"] = str(crc)
        if chosen is None:
            status, offset, length = 200, 0, size
        else:
            status, offset, length = 206, chosen[0], chosen[1] - chosen[0] + 1
            headers["Content-Range"] = f"bytes {chosen[0]}-{chosen[1]}/{size}"
        if applies and status == 206 and _armed(faults, "length_lie", "length_lie_count"):
            length = max(0, length + (faults.length_lie or 0))  # and a body that long
            _consume(faults, "length_lie", "length_lie_count")
        if applies and _armed(faults, "encoding", "encoding_count"):
            headers["Content-Encoding"] = faults.encoding or ""
            _consume(faults, "encoding", "encoding_count")
        overrun = 0
        if applies and status == 206 and _armed(faults, "chunked_overrun", "chunked_overrun_count"):
            overrun = faults.chunked_overrun or 0  # bytes after the range, in a chunked body
            _consume(faults, "chunked_overrun", "chunked_overrun_count")
        plan = self._plan(length, applies)
        self._log(request, name, status)
        if applies and _armed(faults, "header_trickle", "header_trickle_count"):
            every = faults.header_trickle or 0.0
            _consume(faults, "header_trickle", "header_trickle_count")
            headers["Content-Length"] = str(length)
            body = b"".join(store.iter_bytes(backup_id, name, version, offset, length))
            return await self._trickle(request, status, headers, body, every)
        response = web.StreamResponse(status=status, headers=headers)
        if overrun:
            response.enable_chunked_encoding()
            length += overrun
        else:
            response.content_length = length
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await self._send_body(
                request, response, (backup_id, name, version), offset, length, plan
            )
        return response

    async def _trickle(
        self, request: web.Request, status: int, headers: dict[str, str], body: bytes, every: float
    ) -> web.StreamResponse:
        """Send the answer by hand, one header line every ``every`` seconds (``Stats``
        counts it): each read sees a byte in time, so only a deadline on the whole header
        phase ends the wait. Then the real headers and the body, and the connection closes."""
        self.sim.stats.header_trickles += 1
        transport = request.transport
        assert transport is not None
        reason = {200: "OK", 206: "Partial Content"}.get(status, "")
        transport.write(f"HTTP/1.1 {status} {reason}\r\n".encode())
        for n in range(self.sim.faults.header_trickle_lines):
            await asyncio.sleep(every)
            if transport.is_closing():
                return web.Response()  # the client gave up; aiohttp writes nothing more
            transport.write(f"X-Trickle-{n}: {n}\r\n".encode())
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        transport.write(f"{lines}Connection: close\r\n\r\n".encode() + body)
        self.sim.stats.object_bytes_sent += len(body)
        transport.close()
        return web.Response()  # not sent: the transport is closed

    async def _etag(self, backup_id: str, name: str, version: int, size: int) -> str:
        store = self.sim.store
        if size > INLINE_DIGEST_LIMIT and not store.has_digests(backup_id, name, version):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, store.etag, backup_id, name, version)
        return store.etag(backup_id, name, version)

    def _plan(self, length: int, applies: bool) -> _Plan:
        faults = self.sim.faults
        plan = _Plan()
        if not applies:
            return plan
        plan.applies = True
        plan.throttled = faults.throttle_bps is not None
        if _armed(faults, "reset_after_bytes", "reset_count"):
            at = faults.reset_after_bytes
            if at is not None and at < length:
                plan.reset_at = at
                _consume(faults, "reset_after_bytes", "reset_count")
        if _armed(faults, "truncate_after_bytes", "truncate_count"):
            at = faults.truncate_after_bytes
            if at is not None and at < length:
                plan.truncate_at = at
                _consume(faults, "truncate_after_bytes", "truncate_count")
        if _armed(faults, "stall_after_bytes", "stall_count"):
            at = faults.stall_after_bytes
            if at is not None and at < length:
                plan.stall_at = at
                plan.stall_seconds = faults.stall_seconds
                _consume(faults, "stall_after_bytes", "stall_count")
        return plan

    async def _send_body(
        self,
        request: web.Request,
        response: web.StreamResponse,
        file_key: tuple[str, str, int],
        offset: int,
        length: int,
        plan: _Plan,
    ) -> None:
        loop = asyncio.get_running_loop()
        faults = self.sim.faults
        stats = self.sim.stats
        stops = [at for at in (plan.reset_at, plan.truncate_at, plan.stall_at) if at is not None]
        pos = 0
        paced_from, paced_bytes = loop.time(), 0
        while pos < length:
            bps = faults.throttle_bps if plan.throttled else None
            chunk = CHUNK if bps is None else max(1024, min(CHUNK, bps // 50))
            stop = min([length, *(at for at in stops if at > pos)])
            n = min(chunk, stop - pos)
            if bps is not None and bps > 0:
                # Pace against a running schedule so sleep granularity does not add up.
                due = paced_from + paced_bytes / bps
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.5:
                    paced_from, paced_bytes = loop.time(), 0
            at = offset + pos
            backup_id, name, version = file_key
            for piece in self.sim.store.iter_bytes(backup_id, name, version, offset + pos, n):
                bad = faults.corrupt_at
                if (
                    plan.applies
                    and bad is not None
                    and at <= bad < at + len(piece)
                    and faults.corrupt_count != 0
                ):
                    flipped = bytearray(piece)
                    flipped[bad - at] ^= 0xFF  # corrupted in transit; the ETag still claims
                    if faults.corrupt_count > 0:
                        faults.corrupt_count -= 1
                    await response.write(bytes(flipped))
                else:
                    await response.write(piece)
                stats.object_bytes_sent += len(piece)
                at += len(piece)
            pos += n
            paced_bytes += n
            self._count_served(file_key[:2], n)
            if pos == plan.stall_at:
                stats.stalls += 1
                await self._stall(request, plan.stall_seconds)
                paced_from, paced_bytes = loop.time(), 0
            if pos == plan.reset_at:
                stats.resets += 1
                await self._flush(request)
                _reset(request)
                return
            if pos == plan.truncate_at:
                stats.truncations += 1
                await self._flush(request)
                if request.transport is not None:
                    request.transport.close()  # FIN after the buffered bytes
                return

    def _count_served(self, file_key: tuple[str, str], n: int) -> None:
        faults = self.sim.faults
        threshold = faults.change_after_bytes
        if threshold is None:
            self._change_armed = False
            return
        if not self._change_armed:
            self._change_armed = True
            self._served_since_armed.clear()
        if faults.fault_files is not None and file_key[1] not in faults.fault_files:
            return
        served = self._served_since_armed.get(file_key, 0) + n
        self._served_since_armed[file_key] = served
        if served >= threshold:
            faults.change_after_bytes = None
            self._change_armed = False
            self.sim.change_content(*file_key)

    async def _stall(self, request: web.Request, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        # Poll, so a client that gave up frees this handler (and a stop() is not held up).
        while loop.time() < until:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("client went away during a stall")
            await asyncio.sleep(min(0.05, max(0.0, until - loop.time())))

    async def _flush(self, request: web.Request) -> None:
        # Let asyncio's own buffer drain so the promised bytes really leave the process.
        for _ in range(200):
            transport = request.transport
            if transport is None or transport.get_write_buffer_size() == 0:
                return
            await asyncio.sleep(0.005)


_SIG_MSG = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or etag in candidates


def _reset(request: web.Request) -> None:
    """Close with RST (SO_LINGER 0), the way a dropped connection looks to the client."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
