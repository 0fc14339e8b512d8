"""downloader.wire.curlget on libcurl, one ranged GET at a time, against the simulator's
object store (faults from the server side) and, for what the store never does (redirects,
what exactly was sent), a throwaway aiohttp server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from downloader.api.auth import AkSkAuth
from downloader.api.client import RdsClient
from downloader.errors import BodyIncomplete, ConnectFailed, NetworkTimeout, StorageError
from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_FULL
from downloader.wire.answer import Answer, Kind
from downloader.wire.curlget import fetch_range
from downloader.wire.curlmulti import CurlLoop, CurlSettings
from downloader.wire.ratelimit import RateLimiter
from downloader.wire.transfer import Policy, Want

KIB = 1024


class Recorder:
    """A sink that keeps what it is given, in memory, and says when it was given it."""

    def __init__(self, start: int = 0, end: int | None = None) -> None:
        self.pos = start
        self.end = end
        self.live = True
        self.data = bytearray()
        self.writes = 0
        self.stop_after: int | None = None  # bytes, then it no longer wants any

    def reach(self) -> int | None:
        return self.end

    async def write(self, pos: int, data: memoryview) -> None:
        assert pos == self.pos
        self.data += data
        self.pos += len(data)
        self.writes += 1
        if self.stop_after is not None and len(self.data) >= self.stop_after:
            self.live = False


async def links(sim: Simulator) -> dict[str, str]:
    async with aiohttp.ClientSession() as session:
        client = RdsClient(
            endpoint=sim.endpoint,
            project_id=sim.project_id,
            auth=AkSkAuth(sim.ak, sim.sk, project_id=sim.project_id),
            session=session,
        )
        listing = await client.show_backup_files(MYSQL_FULL)
    return {f.name: f.download_link for f in listing.files}


def biggest(sim: Simulator) -> tuple[str, bytes]:
    f = max(sim.backups[MYSQL_FULL].files, key=lambda f: f.size)
    return f.name, sim.expected_bytes(MYSQL_FULL, f.name)


@pytest.fixture
async def curl() -> AsyncIterator[CurlLoop]:
    async with CurlLoop(CurlSettings(stall_timeout=5.0), 8) as loop:
        yield loop


async def take(ans: Answer) -> bool:
    return True


async def test_ranged_gets_are_exact(sim: Simulator, curl: CurlLoop) -> None:
    name, body = biggest(sim)
    url = (await links(sim))[name]
    for start, end in [(0, 300 * KIB), (300 * KIB, None)]:
        sink = Recorder(start, end)
        ans = await fetch_range(curl, url, Want(start, end, None, None), sink, Policy(), take)
        assert ans.kind is Kind.PARTIAL and (ans.start, ans.end) == (start, end or len(body))
        assert bytes(sink.data) == body[start:end]
    log = sim.stats.object_requests_log
    assert [r.range for r in log[-2:]] == [f"bytes=0-{300 * KIB - 1}", f"bytes={300 * KIB}-"]
    assert all(r.accept_encoding == "identity" for r in log)


async def test_no_body_byte_reaches_the_sink_before_its_answer_is_judged(
    sim: Simulator, curl: CurlLoop
) -> None:
    """on_answer takes its time (the body is already on its way); the sink sees nothing
    until it says yes, then every byte."""
    name, body = biggest(sim)
    url = (await links(sim))[name]
    sink = Recorder()
    seen: list[int] = []

    async def slow(ans: Answer) -> bool:
        seen.append(sink.writes)
        await asyncio.sleep(0.3)  # libcurl holds the body's first bytes meanwhile
        seen.append(sink.writes)
        return True

    await fetch_range(curl, url, Want(0, None, None, None), sink, Policy(), slow)
    assert seen == [0, 0]
    assert bytes(sink.data) == body


@pytest.mark.parametrize(
    ("fault", "detail"),
    [({"encoding": "gzip"}, "Content-Encoding"), ({"length_lie": 1000}, "Content-Length")],
)
async def test_a_bad_206_is_judged_and_none_of_its_body_is_written(
    sim: Simulator, curl: CurlLoop, fault: dict[str, object], detail: str
) -> None:
    name, _ = biggest(sim)
    url = (await links(sim))[name]
    for k, v in fault.items():
        setattr(sim.faults, k, v)
    sink = Recorder(0, 100 * KIB)
    ans = await fetch_range(curl, url, Want(0, 100 * KIB, None, None), sink, Policy(), take)
    assert ans.kind is Kind.BAD and detail in ans.detail
    assert sink.writes == 0


async def test_a_200_to_a_range_is_a_whole_answer_and_skips_to_the_sink(
    sim: Simulator, curl: CurlLoop
) -> None:
    """The server ignores Range: the answer says so, and a sink at byte N gets the bytes
    from N (the ones before are read past, not written)."""
    name, body = biggest(sim)
    url = (await links(sim))[name]
    sim.faults.ignore_range = True
    sink = Recorder(1000, None)
    ans = await fetch_range(curl, url, Want(1000, None, None, None), sink, Policy(), take)
    assert ans.kind is Kind.WHOLE
    assert bytes(sink.data) == body[1000:]


async def test_reset_and_truncation_keep_what_came_and_raise(
    sim: Simulator, curl: CurlLoop
) -> None:
    name, body = biggest(sim)
    url = (await links(sim))[name]
    for fault in ("reset_after_bytes", "truncate_after_bytes"):
        setattr(sim.faults, fault, 300 * KIB)
        sink = Recorder()
        with pytest.raises(BodyIncomplete):
            await fetch_range(curl, url, Want(0, None, None, None), sink, Policy(), take)
        assert 0 < len(sink.data) <= 300 * KIB
        assert bytes(sink.data) == body[: len(sink.data)]


async def test_a_stall_ends_the_transfer_after_stall_timeout(sim: Simulator) -> None:
    name, body = biggest(sim)
    url = (await links(sim))[name]
    sim.faults.stall_after_bytes = 200 * KIB
    sim.faults.stall_seconds = 30.0
    async with CurlLoop(CurlSettings(stall_timeout=0.5), 8) as curl:
        sink = Recorder()
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(NetworkTimeout):
            await fetch_range(curl, url, Want(0, None, None, None), sink, Policy(), take)
        assert loop.time() - began < 10
    assert bytes(sink.data) == body[: len(sink.data)] and len(sink.data) > 0


async def test_a_slow_sink_is_no_stall(sim: Simulator) -> None:
    """Time the sink takes (a full window, a slow disk) pauses the transfer: it is not
    counted as silence on the wire."""
    name, body = biggest(sim)
    url = (await links(sim))[name]

    class Slow(Recorder):
        async def write(self, pos: int, data: memoryview) -> None:
            await asyncio.sleep(0.4)
            await super().write(pos, data)

    async with CurlLoop(CurlSettings(stall_timeout=0.3), 8) as curl:
        sink = Slow(0, 600 * KIB)
        policy = Policy(write_size=256 * KIB)
        await fetch_range(curl, url, Want(0, 600 * KIB, None, None), sink, policy, take)
    assert bytes(sink.data) == body[: 600 * KIB]


async def test_a_sink_done_with_its_range_ends_the_transfer_at_once(
    sim: Simulator, curl: CurlLoop
) -> None:
    name, body = biggest(sim)
    url = (await links(sim))[name]
    sim.faults.throttle_bps = 256 * KIB  # the whole file would take seconds
    sink = Recorder()
    sink.stop_after = 1  # the first write is the last it wants
    loop = asyncio.get_running_loop()
    began = loop.time()
    await fetch_range(curl, url, Want(0, None, None, None), sink, Policy(write_age=0.1), take)
    assert loop.time() - began < 2.0
    assert sim.stats.object_bytes_sent < len(body) // 2
    await asyncio.sleep(0.2)
    assert sim.stats.object_active == 0  # its connection was closed, not drained


async def test_a_cancelled_transfer_stops_at_once(sim: Simulator, curl: CurlLoop) -> None:
    name, body = biggest(sim)
    url = (await links(sim))[name]
    sim.faults.throttle_bps = 256 * KIB
    sink = Recorder()
    task = asyncio.create_task(
        fetch_range(curl, url, Want(0, None, None, None), sink, Policy(write_age=0.1), take)
    )
    while not sink.writes:
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert sim.stats.object_active == 0
    assert sim.stats.object_bytes_sent < len(body)
    # The loop still serves the next one.
    sim.faults.throttle_bps = None
    sink = Recorder()
    await fetch_range(curl, url, Want(0, None, None, None), sink, Policy(), take)
    assert bytes(sink.data) == body


async def test_limit_rate_is_shared_by_concurrent_transfers(sim: Simulator, curl: CurlLoop) -> None:
    name, body = biggest(sim)
    url = (await links(sim))[name]
    limiter = RateLimiter(1024 * KIB)
    policy = Policy(limiter=limiter)
    size = 512 * KIB
    sinks = [Recorder(i * size, (i + 1) * size) for i in range(3)]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.gather(
        *(fetch_range(curl, url, Want(s.pos, s.end, None, None), s, policy, take) for s in sinks)
    )
    elapsed = loop.time() - began
    assert elapsed >= 1.5 * 0.95  # 1.5 MiB at 1 MiB/s, together
    for i, s in enumerate(sinks):
        assert bytes(s.data) == body[i * size : (i + 1) * size]


async def test_if_match_goes_with_every_range_and_a_changed_object_is_judged(
    sim: Simulator, curl: CurlLoop
) -> None:
    name, _ = biggest(sim)
    url = (await links(sim))[name]
    etag = sim.etag(MYSQL_FULL, name)
    sink = Recorder(0, 10 * KIB)
    ans = await fetch_range(curl, url, Want(0, 10 * KIB, etag, None), sink, Policy(), take)
    assert ans.kind is Kind.PARTIAL
    assert sim.stats.object_requests_log[-1].if_match == etag
    sim.change_content(MYSQL_FULL, name)
    sink = Recorder(10 * KIB, 20 * KIB)
    ans = await fetch_range(curl, url, Want(10 * KIB, 20 * KIB, etag, None), sink, Policy(), take)
    assert ans.kind is Kind.CHANGED and sink.writes == 0


async def test_a_refused_link_reads_the_error_code(sim: Simulator, curl: CurlLoop) -> None:
    name, _ = biggest(sim)
    url = (await links(sim))[name]
    sim.faults.deny_objects = True
    sink = Recorder()
    ans = await fetch_range(curl, url, Want(0, None, None, None), sink, Policy(), take)
    assert ans.kind is Kind.REFUSED and ans.code == "AccessDenied"
    assert sink.writes == 0


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A server that redirects ``/redirect`` to ``/target`` and answers anything else with
    206 and 10 bytes, keeping each request it saw."""
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        if request.path == "/redirect":
            raise web.HTTPFound("/target")
        return web.Response(
            status=206, body=b"0123456789", headers={"Content-Range": "bytes 0-9/10"}
        )

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_what_is_sent_and_that_redirects_are_not_followed(
    echo: tuple[str, list[web.Request]], curl: CurlLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = echo
    # Proxies from the environment are not used for object data (aiohttp's were not).
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    url = f"{base}/a%2Fb/../c?X-Sig=ab%2Fcd%3D&Expires=1"
    sink = Recorder(0, 10)
    ans = await fetch_range(curl, url, Want(0, 10, '"e1"', None), sink, Policy(), take)
    assert ans.kind is Kind.PARTIAL and bytes(sink.data) == b"0123456789"
    req = seen[-1]
    assert req.raw_path == "/a%2Fb/../c?X-Sig=ab%2Fcd%3D&Expires=1"  # byte for byte
    assert req.headers["Range"] == "bytes=0-9"
    assert req.headers["If-Match"] == '"e1"'
    assert req.headers["Accept-Encoding"] == "identity"
    assert "Expect" not in req.headers and "Pragma" not in req.headers
    ans = await fetch_range(curl, f"{base}/redirect", Want(0, 10, None, None), sink, Policy(), take)
    assert ans.kind is Kind.BAD and ans.status == 302
    assert len(seen) == 2 and seen[-1].path == "/redirect"  # /target never asked for


async def test_a_range_read_to_its_end_leaves_its_connection_for_the_next(
    echo: tuple[str, list[web.Request]], curl: CurlLoop
) -> None:
    """A range that ends where its answer ends completes (it is not cut off at its last
    byte): the next range goes over the same connection, with no new handshake."""
    base, seen = echo
    for _ in range(3):
        sink = Recorder(0, 10)
        await fetch_range(curl, f"{base}/x", Want(0, 10, None, None), sink, Policy(), take)
        assert bytes(sink.data) == b"0123456789"
    ports = {r.transport.get_extra_info("peername")[1] for r in seen}  # type: ignore[union-attr]
    assert len(ports) == 1


async def test_connect_failures_map_to_words(curl: CurlLoop) -> None:
    """Nothing listens: our ConnectFailed, naming the reason."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectFailed) as info:
        await fetch_range(
            curl, f"http://127.0.0.1:{port}/x", Want(0, 10, None, None), Recorder(), Policy(), take
        )
    assert "connection refused" in str(info.value)


async def test_a_sink_that_fails_ends_the_transfer_with_its_error(
    sim: Simulator, curl: CurlLoop
) -> None:
    """A disk error in the sink's write is the transfer's error, not a network one; the
    connection is not drained."""
    name, body = biggest(sim)
    url = (await links(sim))[name]
    sim.faults.throttle_bps = 512 * KIB

    class Failing(Recorder):
        async def write(self, pos: int, data: memoryview) -> None:
            raise StorageError("disk full", file=name)

    with pytest.raises(StorageError):
        await fetch_range(
            curl, url, Want(0, None, None, None), Failing(), Policy(write_age=0.1), take
        )
    await asyncio.sleep(0.3)
    assert sim.stats.object_active == 0
    assert sim.stats.object_bytes_sent < len(body)
