"""RdsClient and the auth sources against the simulator over loopback.

Faults come from the server (``sim.faults``); time is injected (fake sleep / fake clocks), so
nothing here waits for a real Retry-After or a real token lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from downloader.api.auth import AkSkAuth, Auth, IamPasswordAuth, TokenAuth
from downloader.api.budget import ApiBudget
from downloader.api.client import RdsClient, RetryPolicy
from downloader.api.credentials import load_auth
from downloader.api.factory import ApiSettings, open_client
from downloader.api.parse import load_links_file
from downloader.cli.logsetup import ROOT_LOGGER
from downloader.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    ApiThrottledError,
    ApiTlsError,
    ApiUnavailableError,
    UsageError,
)
from downloader.sim import SimBackup, SimFile, Simulator
from downloader.sim.catalog import (
    MYSQL_BINLOG,
    MYSQL_BUILDING,
    MYSQL_FAILED,
    MYSQL_FULL,
    MYSQL_INSTANCE,
    PG_INSTANCE,
    SQLSERVER_DB,
)

FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01, total_timeout=30)


class FakeTime:
    """A monotonic clock and a sleep that advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def ak_sk(sim: Simulator, **kw: Any) -> AkSkAuth:
    return AkSkAuth(sim.ak, sim.sk, project_id=sim.project_id, **kw)


def sim_iam_auth(sim: Simulator, **overrides: Any) -> IamPasswordAuth:
    """IAM password auth with the simulator's user, scoped to its project unless told."""
    kw: dict[str, Any] = {
        "user": sim.iam_user,
        "password": sim.iam_password,
        "domain": sim.iam_domain,
        "iam_endpoint": sim.endpoint,
        "project_id": sim.project_id,
    }
    kw.update(overrides)
    return IamPasswordAuth(**kw)


def make_client(
    sim: Simulator,
    session: aiohttp.ClientSession,
    auth: Auth | None = None,
    *,
    fake: FakeTime | None = None,
    **kw: Any,
) -> RdsClient:
    fake = fake or FakeTime()
    kw.setdefault("retry", FAST)
    return RdsClient(
        endpoint=sim.endpoint,
        project_id=sim.project_id,
        auth=auth or ak_sk(sim),
        session=session,
        clock=fake.clock,
        sleep=fake.sleep,
        **kw,
    )


@contextlib.asynccontextmanager
async def answering(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[int]:
    """A throwaway server on 127.0.0.1 answering every GET with ``handler``; yields its port."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------------------ auth kinds


async def test_ak_sk_backup_files(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = make_client(sim, session)
    listing = await client.show_backup_files(MYSQL_FULL)
    expected = sim.store.backups[MYSQL_FULL].files
    assert [f.name for f in listing.files] == [f.name for f in expected]
    assert [f.size_kb for f in listing.files] == [f.size_kb for f in expected]
    assert all(f.link_expired_time is not None for f in listing.files)
    assert listing.bucket == sim.bucket
    assert listing.server_date is not None
    assert abs((listing.server_date - datetime.now(UTC)).total_seconds()) < 5
    assert listing.warnings == ()
    assert client.calls == 1 and sim.stats.backup_files_calls == 1


async def test_auth_from_sim_env(
    sim: Simulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    auth = load_auth(sim.env(), home=tmp_path)
    assert auth.project_id == sim.project_id
    listing = await make_client(sim, session, auth).show_backup_files(SQLSERVER_DB)
    assert {f.database_name for f in listing.files} == {"sales", "hr", "inventory"}


async def test_temporary_ak_sk_with_security_token(session: aiohttp.ClientSession) -> None:
    async with Simulator(security_token="TEMP-token/with+chars=") as sim:
        good = make_client(sim, session, ak_sk(sim, security_token="TEMP-token/with+chars="))
        assert len((await good.show_backup_files(MYSQL_FULL)).files) == 4
        bad = make_client(sim, session, ak_sk(sim))  # token missing
        with pytest.raises(ApiAuthError):
            await bad.show_backup_files(MYSQL_FULL)


async def test_static_token(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = make_client(sim, session, TokenAuth(sim.static_token))
    assert len((await client.show_backup_files(MYSQL_FULL)).files) == 4


async def test_wrong_sk_costs_exactly_one_request(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    wrong = "SKwrongSecret000000000000000000000000000"
    client = make_client(sim, session, AkSkAuth(sim.ak, wrong, project_id=sim.project_id))
    with pytest.raises(ApiAuthError) as info:
        await client.show_backup_files(MYSQL_FULL)
    assert client.calls == 1
    assert sim.stats.api_calls == 1 and sim.stats.signature_failures == 1
    err = info.value
    assert err.status == 401 and err.error_code == "APIG.0301" and err.request_id
    assert "credentials refused" in str(err)
    assert wrong not in str(err) and wrong not in repr(err)


async def test_wrong_token(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = make_client(sim, session, TokenAuth("MIInot-a-token"))
    with pytest.raises(ApiAuthError):
        await client.show_backup_files(MYSQL_FULL)
    assert sim.stats.api_calls == 1


async def test_wrong_project(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = RdsClient(
        endpoint=sim.endpoint,
        project_id="0" * 32,
        auth=AkSkAuth(sim.ak, sim.sk, project_id="0" * 32),
        session=session,
    )
    with pytest.raises(ApiError):
        await client.show_backup_files(MYSQL_FULL)
    assert client.calls == 1


# ------------------------------------------------------------------------------ IAM tokens


def shared_clock(fake: FakeTime) -> Callable[[], float]:
    """A server wall clock that moves with ``fake``."""
    offset = time.time() - fake.now
    return lambda: fake.now + offset


async def test_iam_token_issue_cache_and_refresh(session: aiohttp.ClientSession) -> None:
    fake = FakeTime()
    async with Simulator(clock=shared_clock(fake)) as sim:
        sim.faults.token_lifetime = 600
        auth = sim_iam_auth(sim, refresh_margin=60, clock=fake.clock)
        client = make_client(sim, session, auth, fake=fake)
        await client.show_backup_files(MYSQL_FULL)
        await client.show_backup_files(MYSQL_FULL)
        assert sim.stats.iam_calls == 1  # cached
        assert auth.token_expires_at is not None
        first = auth.secrets()[1]

        fake.now += 500  # not yet within the 60 s margin
        await client.show_backup_files(MYSQL_FULL)
        assert sim.stats.iam_calls == 1

        fake.now += 50  # 550 s: inside the margin, re-fetched before it dies
        await client.show_backup_files(MYSQL_FULL)
        assert sim.stats.iam_calls == 2
        assert sim.stats.auth_failures == 0
        assert first in auth.secrets()  # old tokens stay redactable
        assert sim.iam_password in auth.secrets()
        assert sim.iam_password not in repr(auth)


async def test_iam_token_refused_is_refetched_once(session: aiohttp.ClientSession) -> None:
    fake = FakeTime()
    server_now = [time.time()]
    async with Simulator(clock=lambda: server_now[0]) as sim:
        sim.faults.token_lifetime = 600
        auth = sim_iam_auth(sim, clock=fake.clock)
        client = make_client(sim, session, auth, fake=fake)
        await client.show_backup_files(MYSQL_FULL)
        server_now[0] += 700  # the server thinks the token died; our clock did not move
        await client.show_backup_files(MYSQL_FULL)
        assert sim.stats.iam_calls == 2
        assert sim.stats.auth_failures == 1
        assert client.calls == 3


async def test_iam_scope_by_region_learns_project(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    auth = sim_iam_auth(sim, project_id=None, region=sim.region)
    assert auth.project_id is None
    token = await auth.token(session)
    assert token and auth.project_id == sim.project_id


async def test_iam_via_load_auth(
    sim: Simulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    env = {
        "RDS_BACKUP_IAM_USER": sim.iam_user,
        "RDS_BACKUP_IAM_PASSWORD": sim.iam_password,
        "RDS_BACKUP_IAM_DOMAIN": sim.iam_domain,
        "HUAWEICLOUD_SDK_PROJECT_ID": sim.project_id,
    }
    auth = load_auth(env, home=tmp_path, iam_endpoint=sim.endpoint)
    assert isinstance(auth, IamPasswordAuth)
    assert len((await make_client(sim, session, auth).show_backup_files(MYSQL_FULL)).files) == 4


async def test_iam_wrong_password(sim: Simulator, session: aiohttp.ClientSession) -> None:
    secret = "not-the-password-42"
    auth = sim_iam_auth(sim, password=secret)
    client = make_client(sim, session, auth)
    with pytest.raises(ApiAuthError) as info:
        await client.show_backup_files(MYSQL_FULL)
    assert "IAM token request" in str(info.value)
    assert secret not in str(info.value)
    assert sim.stats.iam_calls == 1 and sim.stats.api_calls == 0


@pytest.mark.parametrize("secret", ['zq"xy-42', "zq\\xy\\w", "zqäxö-€", 'zq/x"\\é-0'], ids=str)
async def test_iam_echoing_the_request_never_shows_the_password(
    sim: Simulator, session: aiohttp.ClientSession, secret: str
) -> None:
    # The refusal quotes the request body inside its message: the password arrives
    # JSON-escaped (\", \\, \u00e4 ...), in no spelling a plain replace would find.
    sim.faults.iam_echo = True
    client = make_client(sim, session, sim_iam_auth(sim, password=secret))
    with pytest.raises(ApiAuthError) as info:
        await client.show_backup_files(MYSQL_FULL)
    text = str(info.value)
    assert "Request: " in text and "***" in text  # the echo came, with the password hidden
    assert "zq" not in text, text  # no part of it, in any spelling


# ------------------------------------------------------------------------------ errors


async def test_unknown_backup(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = make_client(sim, session)
    with pytest.raises(ApiNotFoundError) as info:
        await client.show_backup_files("0" * 32 + "br01")
    assert info.value.error_code == "DBS.201010" and info.value.status == 404
    assert info.value.request_id
    assert client.calls == 1


async def test_building_and_failed_backups_are_not_retried(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = make_client(sim, session)
    with pytest.raises(ApiError) as info:
        await client.show_backup_files(MYSQL_BUILDING)
    assert info.value.status == 409 and info.value.error_code == "DBS.201205"
    with pytest.raises(ApiNotFoundError):
        await client.show_backup_files(MYSQL_FAILED)
    assert client.calls == 2


@pytest.mark.parametrize(
    ("status", "code"), [(503, "DBS.108000"), (500, "DBS.108000"), (429, "APIG.0308")]
)
async def test_transient_errors_are_retried_honouring_retry_after(
    sim: Simulator, session: aiohttp.ClientSession, status: int, code: str
) -> None:
    sim.faults.api_error_status = status
    sim.faults.api_error_count = 2
    sim.faults.api_retry_after = 3
    fake = FakeTime()
    client = make_client(sim, session, fake=fake)
    listing = await client.show_backup_files(MYSQL_FULL)
    assert len(listing.files) == 4
    assert client.calls == 3 and sim.stats.api_calls == 3
    assert fake.sleeps == [3.0, 3.0]  # Retry-After wins over the tiny jittered backoff


async def test_retries_are_bounded_by_attempts(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.faults.api_error_status = 503
    sim.faults.api_error_count = -1  # forever
    fake = FakeTime()
    client = make_client(sim, session, fake=fake)
    with pytest.raises(ApiUnavailableError) as info:
        await client.show_backup_files(MYSQL_FULL)
    assert info.value.status == 503
    assert client.calls == FAST.max_attempts == sim.stats.api_calls
    assert len(fake.sleeps) == FAST.max_attempts - 1
    assert all(0 <= s <= FAST.max_delay for s in fake.sleeps)


async def test_retries_are_bounded_by_total_time(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.faults.api_error_status = 429
    sim.faults.api_error_count = -1
    sim.faults.api_retry_after = 20
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=100, base_delay=0.001, max_delay=0.01, total_timeout=50)
    client = make_client(sim, session, fake=fake, retry=policy)
    with pytest.raises(ApiThrottledError):
        await client.show_backup_files(MYSQL_FULL)
    assert client.calls == 3  # waits at 0 and 20 s; a third wait would pass 50 s
    assert sum(fake.sleeps) <= 50


async def test_connection_refused_is_unavailable(session: aiohttp.ClientSession) -> None:
    sim = Simulator()
    await sim.start()
    endpoint = sim.endpoint
    await sim.stop()
    fake = FakeTime()
    client = RdsClient(
        endpoint=endpoint,
        project_id=sim.project_id,
        auth=ak_sk(sim),
        session=session,
        retry=FAST,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    with pytest.raises(ApiUnavailableError) as info:
        await client.show_backup_files(MYSQL_FULL)
    assert isinstance(info.value.__cause__, aiohttp.ClientError | OSError)
    # Before any answer, nobody listening is a wrong endpoint: no retries, no backoff.
    assert client.calls == 1 and fake.sleeps == []
    assert sim.sk not in str(info.value)
    host = endpoint.removeprefix("http://")
    assert str(info.value) == (
        f"cannot reach the RDS API at {host}: connection refused (nothing listens there)"
    )


async def test_connection_refused_after_an_answer_is_retried(
    session: aiohttp.ClientSession,
) -> None:
    sim = Simulator()
    await sim.start()
    fake = FakeTime()
    client = RdsClient(
        endpoint=sim.endpoint,
        project_id=sim.project_id,
        auth=ak_sk(sim),
        session=session,
        retry=FAST,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    await client.show_backup_files(MYSQL_FULL)
    await sim.stop()  # the API goes away mid-run: a passing fault, worth the retries
    with pytest.raises(ApiUnavailableError) as info:
        await client.show_backup_files(MYSQL_FULL)
    assert "connection refused" in str(info.value)
    assert client.calls == 1 + FAST.max_attempts


async def test_iam_unreachable_is_unavailable_at_once(session: aiohttp.ClientSession) -> None:
    sim = Simulator()
    await sim.start()
    endpoint = sim.endpoint
    await sim.stop()
    auth = sim_iam_auth(sim, iam_endpoint=endpoint)
    fake = FakeTime()
    client = RdsClient(
        endpoint=endpoint,
        project_id=sim.project_id,
        auth=auth,
        session=session,
        retry=FAST,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    with pytest.raises(ApiUnavailableError) as info:
        await client.show_backup_files(MYSQL_FULL)
    assert str(info.value) == (
        "cannot get an IAM token from 127.0.0.1: connection refused (nothing listens there)"
    )
    assert auth.fetches == 1 and client.calls == 0  # nobody there before any answer: at once
    assert sim.iam_password not in str(info.value)


async def test_tls_failure_is_not_retried_and_names_the_fix(
    session: aiohttp.ClientSession,
) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    sim = Simulator()
    await sim.start(ssl_context=server_ctx)
    try:
        client = make_client(sim, session)  # the system's CAs do not know ours
        with pytest.raises(ApiTlsError) as info:
            await client.show_backup_files(MYSQL_FULL)
        assert client.calls == 1
        host = sim.endpoint.removeprefix("https://")
        assert str(info.value).startswith(f"TLS failure talking to the RDS API at {host}: ")
        assert str(info.value).endswith("(a private CA? use --ca-bundle)")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        listing = await make_client(sim, session, ssl=trusting).show_backup_files(MYSQL_FULL)
        assert len(listing.files) == 4
    finally:
        await sim.stop()


async def test_request_timeout_is_unavailable() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async with answering(slow) as port:
        async with aiohttp.ClientSession() as s:
            fake = FakeTime()
            client = RdsClient(
                endpoint=f"http://127.0.0.1:{port}",
                project_id="p",
                auth=TokenAuth("t"),
                session=s,
                retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001),
                timeout=aiohttp.ClientTimeout(total=0.2, connect=0.2),
                clock=fake.clock,
                sleep=fake.sleep,
            )
            started = time.monotonic()
            with pytest.raises(ApiUnavailableError) as info:
                await client.show_backup_files("b")
            assert "timed out" in str(info.value)
            assert client.calls == 2
            assert time.monotonic() - started < 2


# ------------------------------------------------------------------------------ budget


async def test_budget_keeps_calls_under_the_server_rate(session: aiohttp.ClientSession) -> None:
    fake = FakeTime()
    async with Simulator(clock=shared_clock(fake)) as sim:
        sim.faults.api_rate_per_minute = 5
        budget = ApiBudget(5, burst=5, clock=fake.clock, sleep=fake.sleep)
        client = make_client(sim, session, TokenAuth(sim.static_token), fake=fake, budget=budget)
        for _ in range(12):
            await client.show_backup_files(MYSQL_FULL)
        assert sim.stats.api_rate_limited == 0
        assert sim.stats.api_calls == 12
        assert fake.now - 1000.0 >= 120  # 12 calls at 5 per minute span two full minutes


async def test_without_budget_the_server_throttles(session: aiohttp.ClientSession) -> None:
    fake = FakeTime()
    async with Simulator(clock=shared_clock(fake)) as sim:
        sim.faults.api_rate_per_minute = 5
        policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, total_timeout=120)
        client = make_client(sim, session, TokenAuth(sim.static_token), fake=fake, retry=policy)
        for _ in range(6):
            await client.show_backup_files(MYSQL_FULL)  # the 6th is 429, retried after waiting
        assert sim.stats.api_rate_limited == 1
        assert len(fake.sleeps) == 1 and 1 <= fake.sleeps[0] <= 61  # the server's Retry-After


# ------------------------------------------------------------------------------ backups


async def test_list_backups_and_latest(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = make_client(sim, session)
    every = await client.list_backups(MYSQL_INSTANCE)
    expected = {b.id for b in sim.store.backups.values() if b.instance_id == MYSQL_INSTANCE}
    assert {b.id for b in every} == expected
    assert all(b.begin_time is not None and b.begin_time.tzinfo for b in every)

    latest = await client.latest_backup(MYSQL_INSTANCE, ["auto"])
    assert latest.id == MYSQL_FULL
    assert (await client.latest_backup(MYSQL_INSTANCE, ["incremental"])).id == MYSQL_BINLOG

    completed_full = [
        b
        for b in sim.store.backups.values()
        if b.instance_id == MYSQL_INSTANCE
        and b.type in ("auto", "manual")
        and b.status == "COMPLETED"
    ]
    newest = max(completed_full, key=lambda b: b.end_time)
    both = await client.latest_backup(MYSQL_INSTANCE, ["auto", "manual"])
    assert both.id == newest.id
    assert both.id != MYSQL_BUILDING


async def test_a_long_answer_is_read_whole(session: aiohttp.ClientSession) -> None:
    # A page of 100 backups with long names is about 2 MB: it arrives in many pieces, and
    # the client must read all of them (one read returns only what has arrived).
    begin = datetime(2024, 5, 1, tzinfo=UTC)
    catalog = [
        SimBackup(
            f"{i:032x}br01",
            MYSQL_INSTANCE,
            f"backup-{i:03d}-" + "n" * 20_000,
            "auto",
            "COMPLETED",
            "MySQL",
            "8.0",
            begin + timedelta(hours=i),
            begin + timedelta(hours=i, minutes=5),
        )
        for i in range(100)
    ]
    async with Simulator(catalog=catalog) as big:
        client = make_client(big, session)
        every = await client.list_backups(MYSQL_INSTANCE)
    assert sorted(b.name[:10] for b in every) == [f"backup-{i:03d}" for i in range(100)]
    assert all(len(b.name) == 20_011 for b in every)


async def test_a_list_that_ignores_offset_stops_at_the_first_page_with_nothing_new(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # The API answers the first page whatever the offset and claims 10^9 backups: paging
    # stops at the first page that adds nothing, with a warning, not after 1,000 pages.
    begin = datetime(2024, 5, 1, tzinfo=UTC)
    catalog = [
        SimBackup(
            f"{i:032x}br01", MYSQL_INSTANCE, f"b{i}", "auto", "COMPLETED", "MySQL", "8.0",
            begin + timedelta(hours=i), begin + timedelta(hours=i, minutes=5),
        )
        for i in range(150)
    ]  # fmt: skip
    async with Simulator(catalog=catalog) as liar:
        liar.faults.list_ignores_offset = True
        liar.faults.list_claims_total = 10**9
        client = make_client(liar, session)
        every = await client.list_backups(MYSQL_INSTANCE)
        assert liar.stats.backups_list_calls == 2
        assert len(every) == 100  # the first page, once each
        assert "repeats items already listed (total_count 1000000000)" in caplog.text
        # Honest again: both pages, no warning.
        caplog.clear()
        liar.faults.list_ignores_offset, liar.faults.list_claims_total = False, None
        assert len(await client.list_backups(MYSQL_INSTANCE)) == 150
        assert "repeats" not in caplog.text


async def test_list_backups_time_window_signs_plus_sign(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = make_client(sim, session)  # AK/SK: the server re-computes the signature
    full = sim.store.backups[MYSQL_FULL]
    cst = timezone(timedelta(hours=8))
    begin = (full.begin_time - timedelta(minutes=1)).astimezone(cst)
    end = (full.begin_time + timedelta(minutes=1)).astimezone(cst)
    found = await client.list_backups(MYSQL_INSTANCE, begin_time=begin, end_time=end)
    assert [b.id for b in found] == [MYSQL_FULL]
    with pytest.raises(UsageError):
        await client.list_backups(MYSQL_INSTANCE, begin_time=begin)


async def test_latest_none_completed(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = make_client(sim, session)
    with pytest.raises(ApiNotFoundError) as info:
        await client.latest_backup(PG_INSTANCE, ["manual"])
    assert PG_INSTANCE in str(info.value)
    with pytest.raises(ApiNotFoundError):
        await client.latest_backup("f" * 32 + "in01", ["auto"])


async def test_backups_paging(session: aiohttp.ClientSession) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    instance = "c" * 32 + "in01"
    catalog = [
        SimBackup(
            id=f"{i:032x}br01",
            instance_id=instance,
            name=f"b{i}",
            type="auto",
            status="COMPLETED" if i != 249 else "FAILED",
            engine="MySQL",
            engine_version="8.0",
            begin_time=t0 + timedelta(hours=i),
            end_time=t0 + timedelta(hours=i, minutes=5),
            files=[SimFile(f"f{i}.qp", 1000)],
        )
        for i in range(250)
    ]
    async with Simulator(catalog=catalog) as sim:
        client = make_client(sim, session)
        found = await client.list_backups(instance, backup_type="auto")
        assert len(found) == 250 and len({b.id for b in found}) == 250
        assert sim.stats.backups_list_calls == 3
        latest = await client.latest_backup(instance, ["auto"])
        assert latest.id == f"{248:032x}br01"  # 249 is newer but FAILED


# ------------------------------------------------------------------------------ answers


async def test_unparsable_expiry_is_a_warning(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.faults.expiry_override = "2018-08-016T10:15:14+0800"
    listing = await make_client(sim, session).show_backup_files(MYSQL_FULL)
    assert all(f.link_expired_time is None for f in listing.files)
    assert len(listing.warnings) == 4
    assert listing.files[0].name in listing.warnings[0]


async def test_server_date_shows_server_clock(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.faults.server_clock_offset = 600  # under the 15 min signature limit
    listing = await make_client(sim, session).show_backup_files(MYSQL_FULL)
    assert listing.server_date is not None
    skew = (listing.server_date - datetime.now(UTC)).total_seconds()
    assert 590 < skew < 610


async def test_links_file_from_a_saved_answer(
    sim: Simulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = f"{sim.endpoint}/v3/{sim.project_id}/backup-files?backup_id={MYSQL_FULL}"
    async with session.get(
        url, headers={"X-Auth-Token": sim.static_token, "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 200
        saved = await resp.read()
    path = tmp_path / "links.json"
    path.write_bytes(saved)
    from_file = load_links_file(path)
    from_api = await make_client(sim, session).show_backup_files(MYSQL_FULL)
    assert [f.name for f in from_file.files] == [f.name for f in from_api.files]
    assert json.loads(saved)["bucket"] == from_file.bucket


# ------------------------------------------------------------------------------ logging


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def rds_backup_records() -> Iterator[list[logging.LogRecord]]:
    """What reaches the ``rds_backup`` logger itself: the tree the CLI formats and redacts."""
    logger = logging.getLogger(ROOT_LOGGER)
    handler = _Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_clock_skew_and_retries_log_under_rds_backup(
    sim: Simulator, session: aiohttp.ClientSession, rds_backup_records: list[logging.LogRecord]
) -> None:
    sim.faults.server_clock_offset = 3600  # past the 15 min signature limit
    sim.faults.api_error_status = 503
    sim.faults.api_error_count = 1
    auth = ak_sk(sim)
    listing = await make_client(sim, session, auth).show_backup_files(MYSQL_FULL)
    assert len(listing.files) == 4
    assert 3590 < auth.clock_offset < 3610
    skew = [r for r in rds_backup_records if "clock" in r.getMessage()]
    retry = [r for r in rds_backup_records if "retrying" in r.getMessage()]
    assert len(skew) == 1 and skew[0].levelno == logging.WARNING
    assert len(retry) == 1 and retry[0].levelno == logging.DEBUG
    assert all(r.name.startswith(f"{ROOT_LOGGER}.api") for r in skew + retry)


# ------------------------------------------------------------------ endpoint lists, request ids


def closed_port_url() -> str:
    """An http URL on a loopback port that nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_next_endpoint_after_a_connection_failure(
    sim: Simulator, session: aiohttp.ClientSession, rds_backup_records: list[logging.LogRecord]
) -> None:
    """``HUAWEICLOUD_SDK_REGION_RDS_<REGION>`` may list several endpoints: a refused
    connection moves to the next one (logged), which later calls keep using."""
    dead = closed_port_url()
    env = {**sim.env(), "HUAWEICLOUD_SDK_REGION_RDS_XX_TEST_1": f"{dead}, {sim.endpoint}"}
    settings = ApiSettings(region="xx-test-1")
    async with open_client(settings, env) as client:
        assert len((await client.show_backup_files(MYSQL_FULL)).files) == 4
        assert client.calls == 2 and sim.stats.api_calls == 1
        assert len((await client.show_backup_files(MYSQL_FULL)).files) == 4
        assert client.calls == 3 and sim.stats.api_calls == 2  # straight to the live one
    moved = [r for r in rds_backup_records if "trying" in r.getMessage()]
    assert len(moved) == 1 and moved[0].levelno == logging.WARNING
    text = moved[0].getMessage()
    assert dead.removeprefix("http://") in text and sim.endpoint.removeprefix("http://") in text


async def test_an_endpoint_without_a_scheme_is_reached_over_https(tmp_path: Path) -> None:
    """``--endpoint host:port`` (and the SDK's overrides) get ``https://``, as the SDK's
    client builder adds it; before, such an endpoint was refused as not a URL."""
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    sim = Simulator()
    await sim.start(ssl_context=server_ctx)
    try:
        bare = sim.endpoint.removeprefix("https://")
        assert "://" not in bare
        settings = ApiSettings(endpoint=bare, ca_bundle=str(bundle))
        async with open_client(settings, sim.env()) as client:
            assert len((await client.show_backup_files(MYSQL_FULL)).files) == 4
        env = {**sim.env(), "HUAWEICLOUD_SDK_REGION_RDS_XX_TEST_1": bare}
        async with open_client(ApiSettings(region="xx-test-1", ca_bundle=str(bundle)), env) as c:
            assert len((await c.show_backup_files(MYSQL_FULL)).files) == 4
    finally:
        await sim.stop()


async def test_an_error_answer_does_not_move_to_the_next_endpoint(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = RdsClient(
        endpoint=[sim.endpoint, closed_port_url()],
        project_id=sim.project_id,
        auth=ak_sk(sim),
        session=session,
        retry=FAST,
    )
    with pytest.raises(ApiNotFoundError):
        await client.show_backup_files("nosuchbackup")
    assert client.calls == 1 and sim.stats.api_calls == 1


async def test_every_endpoint_unreachable_is_unavailable(session: aiohttp.ClientSession) -> None:
    first, second = closed_port_url(), closed_port_url()
    fake = FakeTime()
    client = RdsClient(
        endpoint=[first, second],
        project_id="p",
        auth=TokenAuth("t"),
        session=session,
        retry=FAST,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    with pytest.raises(ApiUnavailableError) as info:
        await client.show_backup_files("b")
    assert "cannot reach the RDS API" in str(info.value)
    # Both are tried; refused before any answer, neither is there: no backoff (a timeout,
    # or a refusal once the API has answered, still backs off and tries again).
    assert client.calls == 2
    assert fake.sleeps == []


@pytest.mark.parametrize(
    "body",
    [
        {
            "error_code": "APIG.0301",
            "error_msg": "verify aksk signature fail",
            "request_id": "body-req-42",
        },
        {
            "error": {
                "code": "APIG.0301",
                "message": "verify aksk signature fail",
                "request_id": "body-req-42",
            }
        },
    ],
    ids=["top-level", "nested"],
)
async def test_request_id_only_in_the_body_is_shown(
    session: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(body, status=401)  # no X-Request-Id header

    async with answering(refuse) as port:
        client = RdsClient(
            endpoint=f"http://127.0.0.1:{port}",
            project_id="p",
            auth=TokenAuth("static-token-0123"),
            session=session,
            retry=FAST,
        )
        with pytest.raises(ApiAuthError) as info:
            await client.show_backup_files("b")
        assert info.value.request_id == "body-req-42"
        assert "request id body-req-42" in str(info.value)
