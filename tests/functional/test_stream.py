"""The stream through the library against the simulator: what the window holds stays
within it on a file many times its size, with a consumer slower than the network."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import aiohttp

from downloader.api.auth import AkSkAuth
from downloader.api.client import RdsClient, RetryPolicy
from downloader.download import TransportConfig, make_session
from downloader.engine.resolver import LinkResolver
from downloader.engine.stream import StreamConfig, stream_file
from downloader.engine.window import Window
from downloader.models import FileListing
from downloader.progress import QuietReporter
from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_FULL

KIB = 1024
MIB = 1024 * KIB


def slow_reader(fd: int, sink: list[bytes]) -> None:
    """A consumer that takes 16 KiB, then dawdles: far slower than the simulator."""
    with os.fdopen(fd, "rb", buffering=0) as fh:
        while block := fh.read(16 * KIB):
            sink.append(block)
            time.sleep(0.001)


async def test_the_window_bounds_what_is_held(sim: Simulator) -> None:
    big = max(sim.backups[MYSQL_FULL].files, key=lambda f: f.size)
    window = 512 * KIB  # the file is six times larger
    read_fd, write_fd = os.pipe()
    got: list[bytes] = []
    reader = threading.Thread(target=slow_reader, args=(read_fd, got))
    reader.start()
    try:
        async with aiohttp.ClientSession() as api_session:
            client = RdsClient(
                endpoint=sim.endpoint,
                project_id=sim.project_id,
                auth=AkSkAuth(sim.ak, sim.sk, project_id=sim.project_id),
                session=api_session,
                retry=RetryPolicy(base_delay=0.01, max_delay=0.05),
            )

            async def fetch() -> FileListing:
                return await client.show_backup_files(MYSQL_FULL)

            listing = await fetch()
            (bf,) = [f for f in listing.files if f.name == big.name]
            async with make_session(TransportConfig(), 8) as session:
                result = await stream_file(
                    bf,
                    StreamConfig(window=window, chunk_size=128 * KIB, split=4, connections=4),
                    out_fd=write_fd,
                    resolver=LinkResolver(listing, fetch, margin=60.0),
                    session=session,
                    reporter=QuietReporter(),
                )
    finally:
        os.close(write_fd)
        reader.join(timeout=30)
    data = b"".join(got)
    assert data == sim.expected_bytes(MYSQL_FULL, big.name)
    assert result.written == big.size and result.integrity == "server-checksum"
    assert 0 < result.peak_window <= window


async def test_the_window_hands_bytes_over_in_order_whatever_order_they_land() -> None:
    win = Window(start=100, size=64)
    payload = bytes(range(200))
    await win.put(140, memoryview(payload[140:164]))  # lands first, waits for the gap
    await win.put(100, memoryview(payload[100:120]))
    await win.put(110, memoryview(payload[110:150]))  # overlaps both: only the gap is new
    out = b""
    while len(out) < 64:
        view = await win.take()
        assert view is not None
        out += bytes(view)
        await win.release()
    assert out == payload[100:164]
    assert win.buffered == 0 and win.peak <= 64
    await win.close()
    assert await win.take() is None


async def test_a_write_past_the_window_waits_for_the_consumer() -> None:
    win = Window(start=0, size=32)
    await win.put(0, memoryview(b"a" * 32))
    waiting = asyncio.create_task(win.room(48))
    await asyncio.sleep(0)
    assert not waiting.done()  # the window is full: the writer waits
    view = await win.take()
    assert view is not None and bytes(view) == b"a" * 32
    await win.release()
    await asyncio.wait_for(waiting, 1)  # room again once the consumer took the bytes
