"""The transfer seam: one ranged GET into a :class:`~downloader.wire.sink.Sink`.

The engine asks for bytes with a :class:`Want` under a :class:`Policy` and sees every answer
through an :data:`OnAnswer` before its body is taken; :func:`downloader.wire.curlget.fetch_range`
does it on libcurl (:mod:`downloader.wire.curlmulti`), tests of the engine's state machine
pass a scripted store of the same :data:`Transfer` shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from downloader.wire.answer import Answer
from downloader.wire.curlmulti import CurlLoop
from downloader.wire.ratelimit import RateLimiter
from downloader.wire.sink import Sink

WRITE_SIZE = 256 * 1024  # bytes a connection gathers before it hands them to its sink
STREAM_WRITE_SIZE = 128 * 1024  # cat's: what is in flight outside its window stays small
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

    write_size: int = WRITE_SIZE
    write_age: float = WRITE_AGE  # seconds: a slow link still writes (and journals) often
    limiter: RateLimiter | None = None
    received: Callable[[int], None] | None = None  # counts bytes off the wire
    # Called once the request is about to leave on its connection (any wait for a free one
    # and the connecting are over): its answer's headers are due from then on (the
    # caller's deadline).
    sent: Callable[[], None] | None = None


OnAnswer = Callable[[Answer], Awaitable[bool]]
# fetch_range's shape: what the engine calls for each attempt (tests pass a scripted store).
Transfer = Callable[[CurlLoop, str, Want, Sink, Policy, OnAnswer], Awaitable[Answer]]
