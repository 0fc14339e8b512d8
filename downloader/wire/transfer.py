"""One ranged GET end to end: send, classify the answer, pump its body into a sink.

What is sent and what an answer means is decided in :mod:`downloader.wire.answer` (pure); where
the bytes go is the sink's business (:mod:`downloader.engine.sinks`); what to do after an answer
that carries no body (retry, renew the link, restart the file) is the caller's. aiohttp's
exceptions become ours here, in :func:`downloader.wire.netmap.network_errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace

import aiohttp
from yarl import URL

from downloader.errors import BodyIncomplete
from downloader.wire.answer import Answer, Kind, classify, error_code, request_headers
from downloader.wire.netmap import FOREIGN, network_errors
from downloader.wire.ratelimit import RateLimiter
from downloader.wire.sink import Sink

READ_SIZE = 256 * 1024
WRITE_SIZE = 512 * 1024  # at least READ_SIZE: one read always fits an emptied buffer
WRITE_AGE = 0.25


@dataclass(frozen=True, slots=True)
class Want:
    """What to ask for: bytes ``[start, end)`` (``end`` None: to the end) of the object
    with ``etag`` (sent as If-Match) and ``total`` bytes, when those are known."""

    start: int
    end: int | None
    etag: str | None
    total: int | None


@dataclass(frozen=True, slots=True)
class Policy:
    """How bodies are read: sizes, and what every received byte passes through."""

    read_size: int = READ_SIZE
    write_size: int = WRITE_SIZE
    write_age: float = WRITE_AGE  # seconds: a slow link still writes (and journals) often
    limiter: RateLimiter | None = None
    received: Callable[[int], None] | None = None  # counts bytes off the wire
    # Called once the request has left on a connection (a pool's wait is over): its
    # answer's headers are due from then on (the caller's deadline).
    sent: Callable[[], None] | None = None


OnAnswer = Callable[[Answer], Awaitable[bool]]
# fetch_range's shape: what the engine calls for each attempt (tests pass a scripted store).
Transfer = Callable[
    [aiohttp.ClientSession, str, "Want", Sink, "Policy", OnAnswer], Awaitable[Answer]
]


async def fetch_range(
    session: aiohttp.ClientSession,
    url: str,
    want: Want,
    sink: Sink,
    policy: Policy,
    on_answer: OnAnswer,
) -> Answer:
    """One GET of ``want`` from the presigned ``url``; returns the classified answer.

    ``on_answer`` sees every answer before its body is read and says whether to take the
    body (it may move the sink's range: a probe learns its end, a 200 turns the file into
    one stream). A body answer returns once the sink's range is written; one that ends
    short raises :class:`~downloader.errors.BodyIncomplete` after writing what came.
    Network failures raise :class:`~downloader.errors.NetworkError` leaves.
    """
    headers = request_headers(want.start, want.end, want.etag)
    with network_errors("object store"):
        async with session.get(
            URL(url, encoded=True),
            headers=headers,
            allow_redirects=False,
            trace_request_ctx=policy.sent,
        ) as resp:
            ans = classify(
                resp.status,
                resp.headers,
                start=want.start,
                end=want.end,
                expect_etag=want.etag,
                expect_total=want.total,
            )
            if ans.kind is Kind.REFUSED:
                ans = replace(ans, code=error_code(await resp.content.read(4096)))
            if not await on_answer(ans) or not ans.has_body:
                return ans
            await _pump(resp, ans, sink, policy)
            end = sink.reach()
            if end is not None and sink.pos < end and sink.live:
                raise BodyIncomplete("body ended early", what="ClientPayloadError")
            return ans


def sent_trace() -> aiohttp.TraceConfig:
    """The session hook behind :attr:`Policy.sent`: aiohttp calls it when a request's
    headers have been written, after any wait for a free connection."""

    async def on_sent(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        callback = ctx.trace_request_ctx
        if callable(callback):
            callback()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_sent)
    return trace


async def _pump(resp: aiohttp.ClientResponse, ans: Answer, sink: Sink, policy: Policy) -> None:
    """Stream the body into the sink from its position.

    Memory per connection is bounded by construction: aiohttp buffers at most twice its
    read_bufsize, and this loop copies what it reads into one reusable buffer of
    ``write_size`` bytes, written out when it is full, before a read would overflow it, or
    once ``write_age`` seconds have passed.
    """
    assert ans.start is not None
    pos = sink.pos
    skip = pos - ans.start  # a 200 answer starts at byte 0
    size = policy.write_size
    buf = bytearray(size)
    view = memoryview(buf)
    buffered = 0
    read = resp.content.read
    read_size = policy.read_size
    limiter = policy.limiter
    received = policy.received
    clock = asyncio.get_running_loop().time
    last_write = clock()

    async def write_out() -> bool:
        """Write what the buffer holds; False if the sink no longer wants it."""
        nonlocal pos, buffered, last_write
        if not sink.live:
            return False
        await sink.write(pos, view[:buffered])
        pos += buffered
        buffered = 0
        last_write = clock()
        return True

    try:
        while True:
            data = await read(read_size)
            if not data:
                break
            n = len(data)
            start = 0
            if skip:
                if n <= skip:
                    skip -= n
                    continue
                start, skip = skip, 0
            if received is not None:
                received(n - start)
            if limiter is not None:
                await limiter.take(n - start)
            if buffered + (n - start) > size and not await write_out():
                return
            limit = sink.reach()
            stop = False
            if limit is not None and pos + buffered + (n - start) >= limit:
                n = start + max(0, limit - pos - buffered)
                stop = True
            buf[buffered : buffered + n - start] = memoryview(data)[start:n]
            buffered += n - start
            full = buffered >= size or clock() - last_write >= policy.write_age
            if (full or stop) and not await write_out():
                return
            if stop or not sink.live:
                break
    except FOREIGN:
        # The bytes that did arrive are good: keep them, refetch only the rest.
        if buffered:
            await write_out()
        raise
    if buffered:
        await write_out()
