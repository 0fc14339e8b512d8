"""The engine's state machine under injected time and a scripted object store.

The transfer seam (``Engine(transfer=...)``) takes a :class:`ScriptedStore` instead of the
network: it classifies its own made-up answers with the real ``classify`` and writes
through the real sink, so restart, failure, the one-stream fallback, splits, link renewal
and the governor run exactly as in production, with no wall clock and no server. (The
end-to-end paths stay in tests/functional against the simulator.)
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeClock
from multidict import CIMultiDict, CIMultiDictProxy

from downloader.disk.journal import Journal
from downloader.disk.storage import Layout
from downloader.engine.core import Engine, EngineConfig
from downloader.engine.governor import GOVERNOR_PERIOD
from downloader.engine.lifecycle import Event, FileState, after
from downloader.engine.resolver import LinkResolver
from downloader.errors import (
    BodyIncomplete,
    LinkRefusedError,
    ObjectChangedError,
    TransferError,
    VerificationError,
)
from downloader.models import BackupFile, FileListing
from downloader.progress import QuietReporter
from downloader.results import FileOutcome
from downloader.wire.answer import Answer, classify
from downloader.wire.sink import Sink
from downloader.wire.transfer import OnAnswer, Policy, Want

KIB = 1024
MIB = 1024 * KIB

Fault = Callable[["ScriptedStore", str, Want, int], "Reply | None"]


class Reply:
    """A made-up answer: status, headers, and (for 200/206) whether to cut the body short."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, cut: int = -1):
        self.status = status
        self.headers = headers or {}
        self.cut = cut  # bytes of body to send before the connection drops (-1: all)


class ScriptedStore:
    """An object store in memory, answering ``Want``s; ``faults`` may answer instead."""

    def __init__(self, objects: dict[str, bytes], etag: str = '"3f2a-2"') -> None:
        self.objects = objects
        self.etags = dict.fromkeys(objects, etag)
        self.faults: list[Fault] = []
        self.wants: list[tuple[str, Want]] = []
        self.urls: list[str] = []
        self.block = asyncio.Event()  # held requests wait for it
        self.block.set()
        self.hold: Callable[[Want], bool] = lambda want: True
        self.active = 0  # requests in flight now
        self.peak = 0
        self.sent = 0  # body bytes handed to sinks

    def calls(self, name: str) -> int:
        return sum(1 for n, _ in self.wants if n == name)

    def _reply(self, name: str, want: Want) -> Reply:
        data = self.objects[name]
        total = len(data)
        etag = self.etags[name]
        for fault in self.faults:
            reply = fault(self, name, want, self.calls(name))
            if reply is not None:
                reply.headers.setdefault("ETag", etag)
                return reply
        if total == 0:
            return Reply(416, {"Content-Range": "bytes */0"})
        last = total - 1 if want.end is None else min(want.end, total) - 1
        return Reply(206, {"Content-Range": f"bytes {want.start}-{last}/{total}", "ETag": etag})

    async def __call__(
        self, session: Any, url: str, want: Want, sink: Sink, policy: Policy, on_answer: OnAnswer
    ) -> Answer:
        name = url.rsplit("/", 1)[-1].split("?", 1)[0]
        self.urls.append(url)
        self.wants.append((name, want))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.hold(want):
                await self.block.wait()
            return await self._answer(name, url, want, sink, policy, on_answer)
        finally:
            self.active -= 1

    async def _answer(
        self, name: str, url: str, want: Want, sink: Sink, policy: Policy, on_answer: OnAnswer
    ) -> Answer:
        reply = self._reply(name, want)
        data = self.objects[name]
        if reply.status == 200:
            reply.headers.setdefault("Content-Length", str(len(data)))
        if reply.status == 206 and "Content-Range" in reply.headers:
            first, last = reply.headers["Content-Range"].split()[1].split("/")[0].split("-")
            reply.headers.setdefault("Content-Length", str(int(last) - int(first) + 1))
        headers = CIMultiDictProxy(CIMultiDict(reply.headers))
        ans = classify(
            reply.status,
            headers,
            start=want.start,
            end=want.end,
            expect_etag=want.etag,
            expect_total=want.total,
        )
        if not await on_answer(ans) or not ans.has_body:
            return ans
        pos, sent = sink.pos, 0
        while sink.live:
            reach = sink.reach()
            stop = len(data) if reach is None else min(reach, len(data))
            if pos >= stop:
                break
            n = min(64 * KIB, stop - pos)
            if 0 <= reply.cut <= sent:
                raise BodyIncomplete("connection dropped", what="ClientPayloadError")
            if policy.received is not None:
                policy.received(n)
            await sink.write(pos, memoryview(data)[pos : pos + n])
            self.sent += n
            pos += n
            sent += n
            await asyncio.sleep(0)
        return ans


def listing(store: ScriptedStore, generation: int = 0) -> FileListing:
    files = tuple(
        BackupFile(name, -(-len(data) // KIB), f"http://store/g{generation}/{name}", None)
        for name, data in store.objects.items()
    )
    return FileListing(files, "bucket")


async def run_engine(
    tmp_path: Path,
    store: ScriptedStore,
    *,
    clock: FakeClock | None = None,
    fetch: Callable[[], Awaitable[FileListing]] | None = None,
    **cfg: Any,
) -> tuple[list[FileOutcome], Engine, LinkResolver]:
    clock = clock or FakeClock()
    layout = Layout(tmp_path)
    layout.prepare()
    cfg.setdefault("chunk_size", 256 * KIB)
    cfg.setdefault("adaptive", False)
    resolver = LinkResolver(listing(store), fetch, margin=60.0)
    engine = Engine(
        EngineConfig(out_dir=tmp_path, backup_id="b1", **cfg),
        listing(store).files,
        resolver=resolver,
        session=None,  # type: ignore[arg-type]  # the scripted store needs no session
        reporter=QuietReporter(),
        journal=Journal(layout),
        clock=clock,
        sleep=clock.sleep,
        transfer=store,
    )
    outcomes = await asyncio.wait_for(engine.run(), 30)
    return outcomes, engine, resolver


def payload(n: int, seed: int = 1) -> bytes:
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def assert_exact(tmp_path: Path, store: ScriptedStore) -> None:
    for name, data in store.objects.items():
        assert (tmp_path / name).read_bytes() == data


# ---------------------------------------------------------------- the transition table


def test_the_transition_table_is_the_documented_life() -> None:
    s, e = FileState, Event
    path = [e.PROBE, e.PLAN, e.SEQUENTIAL, e.COMPLETE, e.DONE]
    state = s.WAITING
    for event in path:
        nxt = after(state, event)
        assert nxt is not None, (state, event)
        state = nxt
    assert state is s.DONE
    assert after(s.RANGED, e.RESTART) is s.RESTARTING
    assert after(s.RESTARTING, e.FAIL) is s.FAILING  # a failure outranks a restart
    assert after(s.FAILING, e.RESTART) is None
    assert after(s.RESTARTING, e.DRAINED) is s.WAITING
    assert after(s.FINISHING, e.RESTART) is None  # nothing in flight to restart
    assert after(s.DONE, e.FAIL) is None and after(s.FAILED, e.FAIL) is None
    for state in s:
        assert state.closed == (state in (s.DONE, s.FAILED))


# ---------------------------------------------------------------- runs


async def test_files_arrive_exact_in_parallel_ranges(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(3 * MIB + 5), "b.qp": payload(700 * KIB, 2)})
    outcomes, engine, _ = await run_engine(tmp_path, store, per_file=4, connections=4)
    assert all(o.ok for o in outcomes)
    assert_exact(tmp_path, store)
    for job in engine._jobs.values():  # every byte, the probe's too, was checksummed as
        assert job.hasher is not None and job.hasher.read_back == 0  # written: none read back
    assert store.calls("a.qp") >= 13  # a probe, then 256 KiB ranges
    assert engine.stats.bytes_fetched == sum(len(d) for d in store.objects.values())


async def test_a_changed_object_restarts_the_file_then_gives_up(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(MIB)})

    def changes(st: ScriptedStore, name: str, want: Want, n: int) -> Reply | None:
        if want.start > 0 and want.etag:  # every later range: another object now
            st.etags[name] = f'"v{n}-2"'
        return None

    store.faults.append(changes)
    outcomes, engine, _ = await run_engine(tmp_path, store, per_file=2, connections=2)
    (out,) = outcomes
    assert not out.ok and isinstance(out.error, ObjectChangedError)
    assert engine.stats.restarts == 2  # MAX_RESTARTS, then failed
    assert not (tmp_path / "a.qp").exists()


async def test_one_change_restarts_and_the_second_try_is_exact(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(MIB)})
    changed = []

    def changes_once(st: ScriptedStore, name: str, want: Want, n: int) -> Reply | None:
        if not changed and want.start >= 512 * KIB:
            changed.append(n)
            st.objects[name] = payload(MIB, 9)
            st.etags[name] = '"new-2"'
        return None

    store.faults.append(changes_once)
    outcomes, engine, _ = await run_engine(tmp_path, store, per_file=1, connections=1)
    assert outcomes[0].ok and engine.stats.restarts == 1
    assert_exact(tmp_path, store)


async def test_a_server_that_ignores_range_gets_one_stream(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(2 * MIB)})
    store.faults.append(lambda st, name, want, n: Reply(200))
    outcomes, _, _ = await run_engine(tmp_path, store, per_file=4, connections=4)
    assert outcomes[0].ok
    assert_exact(tmp_path, store)
    assert store.calls("a.qp") == 1  # the probe's whole answer was the stream


async def test_bodies_cut_short_are_retried_from_where_they_stopped(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(MIB)})
    clock = FakeClock()

    def cut(st: ScriptedStore, name: str, want: Want, n: int) -> Reply | None:
        if n in (2, 3):
            last = (want.end or len(st.objects[name])) - 1
            total = len(st.objects[name])
            return Reply(206, {"Content-Range": f"bytes {want.start}-{last}/{total}"}, cut=0)
        return None

    store.faults.append(cut)
    outcomes, engine, _ = await run_engine(
        tmp_path, store, clock=clock, per_file=1, connections=1, backoff_base=1.0
    )
    assert outcomes[0].ok and engine.stats.retries == 2
    assert_exact(tmp_path, store)
    assert len(clock.sleeps) == 2 and all(0 <= s <= 2.0 for s in clock.sleeps)


async def test_retry_after_is_honoured_under_a_cap(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(300 * KIB)})
    clock = FakeClock()
    store.faults.append(
        lambda st, name, want, n: Reply(503, {"Retry-After": "3600"}) if n == 1 else None
    )
    outcomes, _, _ = await run_engine(
        tmp_path, store, clock=clock, connections=1, per_file=1, backoff_max=2.0
    )
    assert outcomes[0].ok
    assert clock.sleeps == [6.0]  # three times the longest backoff, not an hour


async def test_giving_up_after_the_retry_budget_fails_only_that_file(tmp_path: Path) -> None:
    store = ScriptedStore({"bad.qp": payload(300 * KIB), "good.qp": payload(300 * KIB, 3)})
    store.faults.append(lambda st, name, want, n: Reply(500) if name == "bad.qp" else None)
    outcomes, _, _ = await run_engine(tmp_path, store, retries=3)
    by = {o.name: o for o in outcomes}
    assert by["good.qp"].ok
    assert isinstance(by["bad.qp"].error, TransferError)
    assert "giving up after 4 attempts" in str(by["bad.qp"].error)
    assert store.calls("bad.qp") == 4


async def test_a_refused_link_is_renewed_once(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(600 * KIB)})
    generations = []

    def refuse_old(st: ScriptedStore, name: str, want: Want, n: int) -> Reply | None:
        return Reply(403) if "/g0/" in st.urls[-1] else None  # the first links are dead

    store.faults.append(refuse_old)

    async def fetch() -> FileListing:
        generations.append(1)
        return listing(store, generation=1)

    outcomes, _, resolver = await run_engine(tmp_path, store, fetch=fetch)
    assert outcomes[0].ok and resolver.resolutions == 1 and len(generations) == 1
    assert_exact(tmp_path, store)


async def test_a_fresh_link_refused_again_fails_the_file(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(600 * KIB)})
    store.faults.append(lambda st, name, want, n: Reply(403))

    async def fetch() -> FileListing:
        return listing(store, generation=1)

    outcomes, _, _ = await run_engine(tmp_path, store, fetch=fetch)
    assert isinstance(outcomes[0].error, LinkRefusedError)


async def test_a_renewed_link_that_delivered_bytes_is_renewed_again_when_it_dies(
    tmp_path: Path,
) -> None:
    # Links die seconds after issue while claiming an hour: the renewed link delivers bytes,
    # the connection resets, and by the retry that link is dead too. It was valid (the store
    # sent bytes with it), so its 403 renews again instead of failing the file.
    data = payload(600 * KIB)
    store = ScriptedStore({"a.qp": data})
    per_link: dict[str, int] = {}

    def dying(st: ScriptedStore, name: str, want: Want, n: int) -> Reply | None:
        generation = st.urls[-1].split("/")[3]
        per_link[generation] = per_link.get(generation, 0) + 1
        if generation == "g0":
            return Reply(403)
        if generation == "g1":
            if per_link[generation] > 1:
                return Reply(403)  # died after its first answer
            last = (want.end or len(data)) - 1
            return Reply(206, {"Content-Range": f"bytes {want.start}-{last}/{len(data)}"}, cut=1)
        return None

    store.faults.append(dying)
    issued = iter(range(1, 10))

    async def fetch() -> FileListing:
        return listing(store, generation=next(issued))

    outcomes, _, resolver = await run_engine(
        tmp_path, store, fetch=fetch, per_file=1, connections=1
    )
    assert outcomes[0].ok, outcomes[0].error
    assert resolver.resolutions == 2
    assert_exact(tmp_path, store)


async def test_a_refusal_of_a_link_renewed_long_before_is_not_judged_fresh(
    tmp_path: Path,
) -> None:
    # Another file's 403 renewed the links while this one's request with the old link was
    # in flight; this file is then handed that renewal, which has died since. No request
    # was ever made with a link resolved after this file's own refusal: renew, not fail.
    store = ScriptedStore({"a.qp": payload(300 * KIB), "b.qp": payload(300 * KIB, 2)})

    def script(st: ScriptedStore, name: str, want: Want, n: int) -> Reply | None:
        generation = st.urls[-1].split("/")[3]
        if generation == "g0" or (generation == "g1" and name == "a.qp"):
            return Reply(403)  # the first links are dead; a.qp's renewed one died since
        return None

    store.faults.append(script)
    store.hold = lambda want: store.urls[-1].endswith("/g0/a.qp")
    store.block.clear()
    issued = iter(range(1, 10))

    async def fetch() -> FileListing:
        generation = next(issued)
        store.block.set()  # a.qp's request with the first link is answered only now
        return listing(store, generation=generation)

    outcomes, _, resolver = await run_engine(
        tmp_path, store, fetch=fetch, per_file=1, connections=2
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert resolver.resolutions == 2  # b.qp's renewal, then a.qp's own
    assert_exact(tmp_path, store)


async def test_a_wrong_size_fails_verification_before_any_byte(tmp_path: Path) -> None:
    listed = ScriptedStore({"a.qp": payload(300 * KIB)})  # what the API's KB size says
    served = ScriptedStore({"a.qp": payload(500 * KIB)})  # what the object store has
    layout = Layout(tmp_path)
    layout.prepare()
    engine = Engine(
        EngineConfig(out_dir=tmp_path, backup_id="b1", adaptive=False),
        listing(listed).files,
        resolver=LinkResolver(listing(listed), None, margin=60.0),
        session=None,  # type: ignore[arg-type]
        reporter=QuietReporter(),
        journal=Journal(layout),
        transfer=served,
    )
    (out,) = await engine.run()
    assert isinstance(out.error, VerificationError) and "API reports" in str(out.error)
    assert served.calls("a.qp") == 1  # the probe told; nothing more was asked for


async def test_an_idle_connection_splits_the_last_range(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(24 * MIB)})
    outcomes, _, _ = await run_engine(
        tmp_path, store, chunk_size=24 * MIB, per_file=2, connections=2
    )
    assert outcomes[0].ok
    assert_exact(tmp_path, store)
    starts = sorted(w.start for _, w in store.wants)
    assert len(starts) >= 2 and starts[1] > 0  # the probe's range was cut for a second one


class Periods:
    """The engine's sleep, where the governor's periods pass only when the test says so
    (every other sleep passes at once, on the fake clock)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.asked = 0
        self._go = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        if seconds != GOVERNOR_PERIOD:
            await self.clock.sleep(seconds)
            return
        self.asked += 1
        await self._go.wait()
        self._go.clear()
        self.clock.advance(seconds)

    async def tick(self, until: Callable[[], bool]) -> None:
        """Wait (boundedly) for ``until``, then let one period pass."""
        for _ in range(50_000):
            if until():
                break
            await asyncio.sleep(0)
        self._go.set()


async def governed(
    tmp_path: Path,
    store: ScriptedStore,
    periods: Periods,
    cpu: Callable[[], float] = lambda: 0.0,
) -> tuple[FileOutcome, ...]:
    layout = Layout(tmp_path)
    layout.prepare()
    engine = Engine(
        EngineConfig(
            out_dir=tmp_path,
            backup_id="b1",
            jobs=1,
            per_file=2,
            connections=16,
            chunk_size=MIB,
        ),
        listing(store).files,
        resolver=LinkResolver(listing(store), None, margin=60.0),
        session=None,  # type: ignore[arg-type]
        reporter=QuietReporter(),
        journal=Journal(layout),
        clock=periods.clock,
        sleep=periods.sleep,
        transfer=store,
        cpu=cpu,
    )
    return tuple(await asyncio.wait_for(engine.run(), 30))


async def test_the_governor_adds_connections_while_each_is_slow(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(24 * MIB)})
    store.hold = lambda want: want.start > 0  # the probe answers; every range then waits
    store.block.clear()
    periods = Periods(FakeClock())
    seen = []

    async def drive() -> None:
        # A doubling is judged a period after the next: growth every other period.
        for allowed in (2, 4, 4, 8, 8, 16):
            await periods.tick(lambda n=allowed: store.active >= n and periods.asked > len(seen))
            seen.append(store.active)
        store.block.set()

    driver = asyncio.create_task(drive())
    (out,) = await governed(tmp_path, store, periods)
    await driver
    assert out.ok
    assert_exact(tmp_path, store)
    assert seen == [2, 4, 4, 8, 8, 16]  # nothing carried: no evidence against growing


async def test_the_governor_stays_put_while_the_event_loop_is_saturated(tmp_path: Path) -> None:
    # Slow connections (nothing carried), as in the test above, but the event loop's thread
    # is on the CPU all the time (TLS decryption on a fast path): no more connections.
    store = ScriptedStore({"a.qp": payload(24 * MIB)})
    store.hold = lambda want: want.start > 0
    store.block.clear()
    periods = Periods(FakeClock())

    async def drive() -> None:
        for _ in range(3):
            await periods.tick(lambda: store.active >= 2 and periods.asked > 0)
            await asyncio.sleep(0)
        store.block.set()

    driver = asyncio.create_task(drive())
    (out,) = await governed(tmp_path, store, periods, cpu=periods.clock)
    await driver
    assert out.ok
    assert store.peak == 2  # per_file connections, never more
    assert periods.asked >= 3


async def test_the_governor_stays_put_while_connections_are_fast(tmp_path: Path) -> None:
    store = ScriptedStore({"a.qp": payload(48 * MIB)})
    periods = Periods(FakeClock())

    async def drive() -> None:
        for step in range(1, 3):  # 20 MiB a quarter second: 40 MiB/s on each of two
            await periods.tick(lambda s=step: store.sent >= 20 * MIB * s)

    driver = asyncio.create_task(drive())
    (out,) = await governed(tmp_path, store, periods)
    driver.cancel()
    assert out.ok
    assert store.peak == 2  # per_file connections, never more
    assert periods.asked >= 1


@pytest.mark.parametrize("size", [0, 1, 256 * KIB])
async def test_tiny_and_empty_files(tmp_path: Path, size: int) -> None:
    store = ScriptedStore({"a.qp": payload(size)})
    outcomes, _, _ = await run_engine(tmp_path, store)
    assert outcomes[0].ok and outcomes[0].size == size
    assert_exact(tmp_path, store)
