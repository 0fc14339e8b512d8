"""One libcurl multi handle driven by the asyncio event loop: the object store's connections.

libcurl moves the bytes (sockets, TLS, HTTP/1.1 framing, all in C); the event loop only
waits. The multi socket interface hands libcurl's sockets and timers to the loop
(``M_SOCKETFUNCTION`` -> ``add_reader``/``add_writer``, ``M_TIMERFUNCTION`` ->
``call_later``), as tornado's ``curl_httpclient`` does, with its lessons: a descriptor's
handlers are removed before new ones are added (libcurl may reuse a closed descriptor's
number), and a periodic ``socket_all`` sweep catches a socket or timer libcurl forgot to
report. No callback of libcurl's ever calls back into the multi: completions are collected
from ``info_read`` after each ``socket_action``.

The multi's connection cache is the run's connection budget (``M_MAX_TOTAL_CONNECTIONS``,
kept alive between ranges); how many are used is the governor's decision. What one request
sends and what its callbacks do is :mod:`downloader.wire.curlget`'s business.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import pycurl

from downloader.wire.ratelimit import RateLimiter

SWEEP = 1.0  # seconds between socket_all sweeps (tornado's force timeout)
BUFFER_SIZE = 64 * 1024  # libcurl's receive buffer per handle: a TLS record is 16 KiB

Done = Callable[[int, str], None]  # (libcurl's error code, 0 when it went well; message)


@dataclass(frozen=True, slots=True)
class CurlSettings:
    """What every object-store request of a run shares: how to connect and whom to trust."""

    connect_timeout: float = 15.0
    stall_timeout: float = 30.0  # seconds without a byte once connected (our pauses aside)
    verify: bool = True  # False only with --insecure-links
    ca_bundle: str | None = None  # PEM file of CAs to trust; None: the system's store
    user_agent: str = "rds-backup"


def system_trust() -> tuple[str | None, str | None]:
    """The CA file and folder Python's default TLS context trusts (``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` included), which aiohttp used: libcurl's compiled-in default in the
    pycurl wheel names another system's paths."""
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and os.path.isfile(paths.cafile) else None
    capath = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    return cafile, capath


class CurlLoop:
    """One ``CurlMulti`` on the running event loop (an async context manager).

    :meth:`handle` lends a configured easy handle; :meth:`start` runs it and calls its
    ``done`` once libcurl is finished with it; :meth:`stop` ends it at once; :meth:`give`
    takes it back for reuse (a reused handle keeps its TLS session and DNS caches).
    """

    def __init__(
        self, settings: CurlSettings, connections: int, *, limit_rate: int | None = None
    ) -> None:
        self.settings = settings
        # --limit-rate is the run's, like its connections: every run sharing this loop (a
        # chain's backups, a fleet's instances) draws on one bucket.
        self.limiter = RateLimiter(limit_rate) if limit_rate else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, connections)
        self._multi.setopt(pycurl.M_MAXCONNECTS, connections)
        self._multi.setopt(pycurl.M_PIPELINING, 0)  # one range per connection, no multiplex
        self._share = pycurl.CurlShare()
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_DNS)
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
        self._trust = (settings.ca_bundle, None) if settings.ca_bundle else system_trust()
        self._free: list[pycurl.Curl] = []
        self._running: dict[pycurl.Curl, Done] = {}
        # The budget, kept here rather than in libcurl's pending queue, where the connect
        # timeout would run out while a transfer waits for another run's connection.
        self.slots = asyncio.Semaphore(connections)
        self._fds: dict[int, int] = {}  # descriptor -> the events the loop watches for
        self._timer: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._kicked = False
        self._closed = False

    async def __aenter__(self) -> CurlLoop:
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.call_later(SWEEP, self._sweep)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "CurlLoop used outside its async with"
        return self._loop

    def handle(self) -> pycurl.Curl:
        """An easy handle with the run's options set; the caller sets the URL, the headers
        and every callback (a reused handle still holds the last request's)."""
        if self._free:
            return self._free.pop()
        easy = pycurl.Curl()
        self._configure(easy)
        return easy

    def give(self, easy: pycurl.Curl) -> None:
        """Take back a handle :meth:`start` is done with (or that never started)."""
        if easy in self._running:
            self.stop(easy)
        if self._closed:
            easy.close()
        else:
            self._free.append(easy)

    def start(self, easy: pycurl.Curl, done: Done) -> None:
        """Run ``easy``; ``done(code, message)`` is called once, from the loop, when it ends
        (not when :meth:`stop` ends it)."""
        self._running[easy] = done
        self._multi.add_handle(easy)
        self.kick()

    def stop(self, easy: pycurl.Curl) -> None:
        """End ``easy``'s transfer now (its connection is closed unless the answer was
        complete); ``done`` is not called. Never from inside one of its callbacks."""
        if self._running.pop(easy, None) is not None:
            self._multi.remove_handle(easy)

    def resume(self, easy: pycurl.Curl) -> None:
        """Unpause a handle whose write callback paused it. libcurl may call that callback
        again before this returns."""
        easy.pause(pycurl.PAUSE_CONT)
        self.kick()

    def kick(self) -> None:
        """Let libcurl act soon (at most once per loop iteration): after a new handle, an
        unpause, or a timer of zero."""
        if not self._kicked:
            self._kicked = True
            self.loop.call_soon(self._on_kick)

    def close(self) -> None:
        """Stop every transfer and free libcurl's handles (on leaving the async with)."""
        if self._closed:
            return
        self._closed = True
        for easy in list(self._running):
            self.stop(easy)
        for fd in list(self._fds):
            self._unwatch(fd)
        for h in (self._timer, self._sweeper):
            if h is not None:
                h.cancel()
        for easy in self._free:
            easy.close()
        self._free.clear()
        self._multi.close()
        self._share.close()

    # -- libcurl's callbacks (called from inside socket_action) --------------------------

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            self._unwatch(fd)
            return
        events = {pycurl.POLL_IN: 1, pycurl.POLL_OUT: 2, pycurl.POLL_INOUT: 3}.get(what, 0)
        if self._fds.get(fd) == events:
            return
        self._unwatch(fd)  # first: the number may belong to a new socket now
        loop = self.loop
        if events & 1:
            loop.add_reader(fd, self._on_ready, fd, pycurl.CSELECT_IN)
        if events & 2:
            loop.add_writer(fd, self._on_ready, fd, pycurl.CSELECT_OUT)
        self._fds[fd] = events

    def _on_timer(self, msecs: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if msecs == 0:
            self.kick()
        elif msecs > 0:
            self._timer = self.loop.call_later(msecs / 1000.0, self._on_timeout)

    # -- the loop's callbacks --------------------------------------------------------------

    def _unwatch(self, fd: int) -> None:
        events = self._fds.pop(fd, 0)
        loop = self.loop
        if events & 1:
            loop.remove_reader(fd)
        if events & 2:
            loop.remove_writer(fd)

    def _on_ready(self, fd: int, action: int) -> None:
        self._act(fd, action)

    def _on_timeout(self) -> None:
        self._timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _on_kick(self) -> None:
        self._kicked = False
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, action: int) -> None:
        if self._closed:
            return
        multi = self._multi
        while True:
            ret, _ = multi.socket_action(fd, action)
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        self._collect()

    def _sweep(self) -> None:
        """In case libcurl forgot to report a timer (tornado's lesson; its ``socket_all``
        is deprecated in pycurl: a timeout action runs every transfer's due work)."""
        if self._closed:
            return
        if self._running:
            self._act(pycurl.SOCKET_TIMEOUT, 0)
        self._sweeper = self.loop.call_later(SWEEP, self._sweep)

    def _collect(self) -> None:
        """Tell each finished transfer's owner; libcurl is done with its handle."""
        while True:
            queued, ok, failed = self._multi.info_read()
            for easy in ok:
                self._finished(easy, 0, "")
            for easy, code, message in failed:
                self._finished(easy, code, message)
            if not queued:
                break

    def _finished(self, easy: pycurl.Curl, code: int, message: str) -> None:
        done = self._running.pop(easy, None)
        self._multi.remove_handle(easy)
        if done is not None:
            done(code, message)

    def _configure(self, easy: pycurl.Curl) -> None:
        s = self.settings
        easy.setopt(pycurl.NOSIGNAL, 1)
        easy.setopt(pycurl.SHARE, self._share)
        # HTTP and HTTPS only, also for a redirect (which is never followed anyway: a
        # presigned link that redirects is an answer to classify, not to chase).
        # (pycurl offers the bitmasks, deprecated in libcurl 7.85 for the _STR options, but
        # still honoured.)
        easy.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        easy.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        easy.setopt(pycurl.FOLLOWLOCATION, 0)
        easy.setopt(pycurl.PATH_AS_IS, 1)  # the signed path byte for byte
        easy.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        easy.setopt(pycurl.HTTP_CONTENT_DECODING, 0)  # bytes as sent: a coding is refused
        easy.setopt(pycurl.PROXY, "")  # as before: no proxy from the environment
        easy.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(s.connect_timeout * 1000)))
        easy.setopt(pycurl.BUFFERSIZE, BUFFER_SIZE)
        easy.setopt(pycurl.USERAGENT, s.user_agent)
        if s.verify:
            easy.setopt(pycurl.SSL_VERIFYPEER, 1)
            easy.setopt(pycurl.SSL_VERIFYHOST, 2)
            # Exactly these, as Python's context trusted them: a --ca-bundle alone, or the
            # system's file and folder (never libcurl's compiled-in defaults on top).
            cafile, capath = self._trust
            if cafile:
                easy.setopt(pycurl.CAINFO, cafile)
            else:
                easy.unsetopt(pycurl.CAINFO)
            if capath:
                easy.setopt(pycurl.CAPATH, capath)
            else:
                easy.unsetopt(pycurl.CAPATH)
        else:
            easy.setopt(pycurl.SSL_VERIFYPEER, 0)
            easy.setopt(pycurl.SSL_VERIFYHOST, 0)
