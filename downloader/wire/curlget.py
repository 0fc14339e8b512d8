"""One ranged GET on libcurl: send, classify the answer, hand its body to a sink.

What is sent and what an answer means is :mod:`downloader.wire.answer`'s (pure); libcurl
moves the bytes (:mod:`downloader.wire.curlmulti`). Per request, an easy handle's callbacks
run a small state machine, and no body byte passes it before its answer is judged:

* the header callback collects the answer's head; at its blank line the answer is
  classified (:func:`~downloader.wire.answer.classify`), and the caller's ``on_answer``
  says whether to take the body. Until then the write callback pauses the transfer
  (``CURL_WRITEFUNC_PAUSE``: libcurl keeps the bytes and offers them again on resume);
* taken, the body's bytes gather in one buffer of ``Policy.write_size`` per connection;
  full (or old: ``write_age``), it is handed to the sink's ``write`` (which may wait: a
  disk, ``cat``'s window) while the transfer is paused, then resumed: memory per
  connection is bounded by construction, and the sink sets the pace;
* a sink that no longer wants bytes, a range that a split cut short, a stall (no byte
  for ``stall_timeout`` seconds while not paused by us), a cancellation (Ctrl-C) or a
  failed write ends the transfer at once; ``--limit-rate`` pauses it for its debt.

libcurl's error codes become ours in :func:`downloader.wire.netmap.curl_error`.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import replace

import pycurl

from downloader.errors import BodyIncomplete, NetworkTimeout
from downloader.wire.answer import Answer, Kind, classify, error_code, request_headers
from downloader.wire.curlmulti import CurlLoop
from downloader.wire.netmap import CurlFailure, curl_error
from downloader.wire.sink import Sink
from downloader.wire.transfer import OnAnswer, Policy, Want

PAUSE = pycurl.WRITEFUNC_PAUSE
ERROR_BODY = 4096  # bytes of an error answer's body read for its <Code>
WHERE = "object store"


class Phase(enum.Enum):
    HEAD = "head"  # the answer's head is arriving
    DECIDING = "deciding"  # classified; on_answer has not said yet (body bytes wait)
    BODY = "body"  # taken: bytes go to the sink
    ERROR_BODY = "error_body"  # a refusal: its body's first bytes, for the error code
    DROP = "drop"  # not taken, or ended by us: any byte ends the transfer


class Headers(dict[str, str]):
    """An answer's header fields, looked up case-insensitively (``classify`` asks for
    ``ETag``; the wire may say ``etag``). Repeated fields are joined with commas (RFC 9110
    section 5.3): a repeated Content-Length then agrees with nothing."""

    def add(self, name: str, value: str) -> None:
        key = name.strip().lower()
        value = value.strip()
        super().__setitem__(key, f"{self[key]}, {value}" if key in self else value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)


class CurlGet:
    """One request's state, shared by its libcurl callbacks and :func:`fetch_range`."""

    def __init__(
        self, curl: CurlLoop, easy: pycurl.Curl, want: Want, sink: Sink, policy: Policy
    ) -> None:
        self.curl = curl
        self.easy = easy
        self.want = want
        self.sink = sink
        self.policy = policy
        loop = curl.loop
        self.loop = loop
        self.phase = Phase.HEAD
        self.status = 0
        self.headers = Headers()
        self.answer: Answer | None = None
        self.answered: asyncio.Future[Answer] = loop.create_future()
        self.finished: asyncio.Future[CurlFailure | None] = loop.create_future()
        self.error_body = bytearray()
        self.failure: BaseException | None = None  # the sink's
        self.stalled: NetworkTimeout | None = None
        # The body: bytes [pos, pos + buffered) wait in buf for the sink.
        self.buf = bytearray()
        self.view = memoryview(self.buf)
        self.buffered = 0
        self.pos = 0
        self.skip = 0
        self.body_end = 0  # one past the answer's last byte
        self.flushing: asyncio.Task[None] | None = None
        self.paused = False  # by our write callback
        self.holding = False  # paying --limit-rate's debt
        self.hold_until = 0.0
        self.ended = False  # by us: libcurl's "write error" that follows is ours
        now = time.monotonic()
        self.last_write = now
        self.last_byte = now
        self.connected = False  # the stall clock runs once a connection is made
        self.watch: asyncio.TimerHandle | None = None

    # -- setup -----------------------------------------------------------------------------

    def prepare(self, url: str) -> None:
        easy = self.easy
        want = self.want
        headers = request_headers(want.start, want.end, want.etag)
        # No "Expect:" or "Pragma:" of libcurl's own: only what answer.py says is sent.
        lines = [f"{k}: {v}" for k, v in headers.items()] + ["Expect:", "Pragma:"]
        easy.setopt(pycurl.URL, url)
        easy.setopt(pycurl.HTTPHEADER, lines)
        easy.setopt(pycurl.HEADERFUNCTION, self._on_header)
        easy.setopt(pycurl.WRITEFUNCTION, self._on_write)
        easy.setopt(pycurl.PREREQFUNCTION, self._on_connected)
        self._arm()

    # -- libcurl's callbacks (inside socket_action: never call into the multi here) ------

    def _on_connected(self, *_: object) -> int:
        self.connected = True
        self.last_byte = time.monotonic()
        if self.policy.sent is not None:
            self.policy.sent()  # the request leaves now: its headers are due
        return pycurl.PREREQFUNC_OK

    def _on_header(self, line: bytes) -> None:
        self.last_byte = time.monotonic()
        if self.phase is not Phase.HEAD:
            return  # trailers
        if line[:5] == b"HTTP/":
            parts = line.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.headers = Headers()
            return
        if line.strip():
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                self.headers.add(name, value)
            return
        if 100 <= self.status < 200:
            return  # informational: the answer's own head follows
        want = self.want
        ans = classify(
            self.status,
            self.headers,
            start=want.start,
            end=want.end,
            expect_etag=want.etag,
            expect_total=want.total,
        )
        self.answer = ans
        if ans.kind is Kind.REFUSED:
            self.phase = Phase.ERROR_BODY
        else:
            self.phase = Phase.DECIDING
            self.answered.set_result(ans)

    def _on_write(self, data: bytes) -> int | None:
        self.last_byte = now = time.monotonic()
        phase = self.phase
        if phase is not Phase.BODY:
            if phase is Phase.DECIDING:
                self.paused = True  # kept by libcurl until the answer is judged
                return PAUSE
            if phase is Phase.ERROR_BODY and len(self.error_body) < ERROR_BODY:
                self.error_body += data[: ERROR_BODY - len(self.error_body)]
                if len(self.error_body) < ERROR_BODY:
                    return None
            self.ended = True
            return 0  # a "write error": the transfer ends here
        if self.flushing is not None or self.holding:
            self.paused = True
            return PAUSE
        n = len(data)
        if self.buffered + n > len(self.buf):
            if self.buffered:
                self._flush()
                self.paused = True
                return PAUSE
            self.buf = bytearray(n)  # libcurl offered more than a buffer at once
            self.view = memoryview(self.buf)
        sink = self.sink
        if not sink.live:
            self.ended = True
            return 0
        start = 0
        if self.skip:  # a 200 answer starts at byte 0
            if n <= self.skip:
                self.skip -= n
                return None
            start, self.skip = self.skip, 0
        take = n - start
        policy = self.policy
        if policy.received is not None:
            policy.received(take)
        if policy.limiter is not None:
            wait = policy.limiter.charge(take)
            if wait > 0:
                self.holding = True
                self.hold_until = now + wait
                self.loop.call_later(wait, self._unhold)
        stop = False
        limit = sink.reach()
        have = self.pos + self.buffered
        if limit is not None and have + take >= limit:
            take = max(0, limit - have)
            # Cut short (a split) only if the answer goes on: one that ends here completes,
            # and its connection stays open for the next range.
            stop = limit < self.body_end
        b = self.buffered
        if start == 0 and take == n:
            self.buf[b : b + n] = data
        else:
            self.buf[b : b + take] = memoryview(data)[start : start + take]
        self.buffered = b + take
        if stop:
            self._flush()
            self.ended = True
            return 0
        if self.buffered >= len(self.buf) or now - self.last_write >= policy.write_age:
            self._flush()
        return None

    # -- the loop's side -------------------------------------------------------------------

    def on_done(self, code: int, message: str) -> None:
        """libcurl is finished with the transfer (from :class:`CurlLoop`)."""
        failure = None
        if code and not (self.ended and code == pycurl.E_WRITE_ERROR):
            try:
                os_errno = int(self.easy.getinfo(pycurl.OS_ERRNO))
            except pycurl.error:
                os_errno = 0
            failure = CurlFailure(code, message, os_errno)
        self._settle_answer(failure)
        if not self.finished.done():
            self.finished.set_result(failure)

    def _settle_answer(self, failure: CurlFailure | None) -> None:
        if self.answered.done():
            return
        if self.phase is Phase.ERROR_BODY and self.answer is not None:
            code = error_code(bytes(self.error_body))
            self.answered.set_result(replace(self.answer, code=code))
        elif failure is not None:
            error = curl_error(failure, WHERE)
            error.__cause__ = failure
            self.answered.set_exception(error)
        elif (ours := self.failure or self.stalled) is not None:
            self.answered.set_exception(ours)
        else:
            self.answered.set_exception(
                BodyIncomplete(f"{WHERE}: the connection ended before an answer", what="no answer")
            )

    def take_body(self, ans: Answer) -> None:
        """The caller takes the body: let the bytes flow from the sink's position."""
        assert ans.start is not None
        assert ans.end is not None
        self.pos = self.sink.pos
        self.skip = self.pos - ans.start
        self.body_end = ans.end
        self.buf = bytearray(self.policy.write_size)
        self.view = memoryview(self.buf)
        self.phase = Phase.BODY
        self.last_write = time.monotonic()
        self._resume()

    def drop(self) -> None:
        """Not taken: no byte of it goes anywhere."""
        self.phase = Phase.DROP

    def _resume(self) -> None:
        if self.paused and not self.finished.done():
            self.paused = False
            self.last_byte = time.monotonic()
            try:
                self.curl.resume(self.easy)
            except pycurl.error as exc:
                # libcurl handed the kept bytes to the write callback at once, which ended
                # the transfer (ours: a range's last byte) or failed to take them.
                failure = None
                if not self.ended:
                    code, message = [*exc.args, 0, ""][:2]
                    failure = CurlFailure(int(code), str(message))
                self.curl.stop(self.easy)
                self._settle_answer(failure)
                if not self.finished.done():
                    self.finished.set_result(failure)

    def _unhold(self) -> None:
        self.holding = False
        if self.flushing is None:
            self._resume()

    def _flush(self) -> None:
        """Hand the buffer to the sink (the transfer pauses at its next bytes meanwhile)."""
        self.flushing = self.loop.create_task(self._write_out())

    async def _write_out(self) -> None:
        try:
            if self.buffered:
                if self.sink.live:
                    await self.sink.write(self.pos, self.view[: self.buffered])
                    self.pos += self.buffered
                else:
                    self._end()
                self.buffered = 0
            self.last_write = time.monotonic()
        except BaseException as exc:
            self.failure = exc
            self._end()
            if not isinstance(exc, Exception):
                raise
        finally:
            self.flushing = None
        if not self.holding:
            self._resume()

    def _end(self) -> None:
        """End the transfer from the loop's side (a stall, a sink done with it)."""
        self.ended = True
        self.phase = Phase.DROP
        self.curl.stop(self.easy)
        self._settle_answer(None)
        if not self.finished.done():
            self.finished.set_result(None)

    def _arm(self) -> None:
        self.watch = self.loop.call_later(min(1.0, self.curl.settings.stall_timeout), self._check)

    def _check(self) -> None:
        """Every second: a stall ends the transfer; so does a sink that no longer wants
        its bytes (a split, a failed file), without waiting for the next byte."""
        self.watch = None
        if self.finished.done():
            return
        now = time.monotonic()
        ours = self.paused or self.flushing is not None or self.holding
        stall = self.curl.settings.stall_timeout
        if self.connected and not ours and now - self.last_byte >= stall:
            self.stalled = NetworkTimeout(
                f"{WHERE}: timed out (no byte for {stall:g} s)", what="stalled"
            )
            self._end()
            return
        if self.phase is Phase.BODY and self.flushing is None and not self.sink.live:
            self._end()
            return
        self._arm()

    async def close(self) -> None:
        """Bounded cleanup on every way out: no timer, no write in flight, handle back."""
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        task = self.flushing
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.buf = bytearray()  # the handle, kept for reuse, holds on to this object
        self.view = memoryview(self.buf)
        self.curl.give(self.easy)


async def fetch_range(
    curl: CurlLoop, url: str, want: Want, sink: Sink, policy: Policy, on_answer: OnAnswer
) -> Answer:
    """One GET of ``want`` from the presigned ``url``; returns the classified answer.

    ``on_answer`` sees every answer before any of its body is taken and says whether to
    take it (it may move the sink's range: a probe learns its end, a 200 turns the file
    into one stream). A body answer returns once the sink's range is written; one that
    ends short raises :class:`~downloader.errors.BodyIncomplete` after writing what came.
    Network failures raise :class:`~downloader.errors.NetworkError` leaves.
    """
    async with curl.slots:
        return await _fetch(curl, url, want, sink, policy, on_answer)


async def _fetch(
    curl: CurlLoop, url: str, want: Want, sink: Sink, policy: Policy, on_answer: OnAnswer
) -> Answer:
    easy = curl.handle()
    get = CurlGet(curl, easy, want, sink, policy)
    try:
        get.prepare(url)
        curl.start(easy, get.on_done)
        ans = await get.answered
        if not await on_answer(ans) or not ans.has_body:
            get.drop()
            return ans
        get.take_body(ans)
        failure = await get.finished
        while get.flushing is not None:
            await get.flushing
        if get.failure is None and get.buffered and sink.live:
            # The bytes that did arrive are good, also before a failure: keep them.
            get._flush()
            while get.flushing is not None:
                await get.flushing
        if get.failure is not None:
            raise get.failure
        if get.stalled is not None:
            raise get.stalled
        if failure is not None:
            raise curl_error(failure, WHERE) from failure
        if get.holding:  # from the first charge to the return: at most the rate
            await asyncio.sleep(max(0.0, get.hold_until - time.monotonic()))
        end = sink.reach()
        if end is not None and sink.pos < end and sink.live:
            raise BodyIncomplete(f"{WHERE}: body ended early", what="body ended early")
        return ans
    finally:
        await get.close()
