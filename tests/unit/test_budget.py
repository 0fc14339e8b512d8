"""The API call budget and the pure retry decisions of the RDS client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fakes import FakeClock
from hypothesis import given
from hypothesis import strategies as st

from downloader.api.budget import ApiBudget
from downloader.api.client import RetryPolicy, pick_latest
from downloader.models import Backup
from downloader.wire.httpdates import retry_after_seconds


async def spend(budget: ApiBudget, fake: FakeClock, n: int) -> list[float]:
    stamps = []
    for _ in range(n):
        await budget.acquire()
        stamps.append(fake.now)
    return stamps


def max_in_window(stamps: list[float], period: float) -> int:
    return max(sum(1 for t in stamps if s <= t < s + period) for s in stamps)


async def test_default_is_60_per_minute_with_a_burst_of_10() -> None:
    fake = FakeClock(start=0.0)
    budget = ApiBudget(clock=fake.clock, sleep=fake.sleep)
    stamps = await spend(budget, fake, 130)
    assert stamps[:10] == [0.0] * 10  # the burst
    assert stamps[10] == pytest.approx(1.0)  # then one a second
    assert max_in_window(stamps, 60.0) <= 60
    assert budget.acquired == 130


async def test_full_burst_never_exceeds_the_window() -> None:
    fake = FakeClock(start=0.0)
    budget = ApiBudget(5, burst=5, clock=fake.clock, sleep=fake.sleep)
    stamps = await spend(budget, fake, 23)
    assert stamps[:5] == [0.0] * 5
    assert max_in_window(stamps, 60.0) <= 5
    assert stamps[5] == pytest.approx(60.0)  # the window, not the faster bucket refill, rules


@given(
    per_minute=st.integers(1, 30),
    burst=st.integers(1, 40),
    gaps=st.lists(st.floats(0, 20), min_size=1, max_size=60),
)
def test_window_property(per_minute: int, burst: int, gaps: list[float]) -> None:
    async def run() -> list[float]:
        fake = FakeClock(start=0.0)
        budget = ApiBudget(per_minute, burst=burst, clock=fake.clock, sleep=fake.sleep)
        stamps = []
        for gap in gaps:
            fake.advance(gap)
            await budget.acquire()
            stamps.append(fake.now)
        return stamps

    stamps = asyncio.run(run())
    assert max_in_window(stamps, 60.0) <= per_minute


async def test_pause_holds_everyone() -> None:
    fake = FakeClock(start=0.0)
    budget = ApiBudget(clock=fake.clock, sleep=fake.sleep)
    budget.pause(7.5)
    await budget.acquire()
    assert fake.now == pytest.approx(7.5)


async def test_concurrent_waiters_all_get_through() -> None:
    fake = FakeClock(start=0.0)
    budget = ApiBudget(3, burst=1, clock=fake.clock, sleep=fake.sleep)
    await asyncio.gather(*(budget.acquire() for _ in range(7)))
    assert budget.acquired == 7
    assert fake.now >= 120  # 7 calls at 3 per minute


def test_bad_budget() -> None:
    with pytest.raises(ValueError):
        ApiBudget(0)


# ------------------------------------------------------------------------- retry policy


def test_backoff_grows_and_is_capped() -> None:
    backoff = RetryPolicy(base_delay=1, max_delay=10).backoff
    assert [backoff.delay(n, None, lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay(3, None, lambda: 0.0) == 0.0  # full jitter reaches zero
    assert backoff.delay(1000, None, lambda: 1.0) == 10


def test_retry_after_is_a_floor() -> None:
    backoff = RetryPolicy(base_delay=1, max_delay=10).backoff
    assert backoff.delay(1, 42.0, lambda: 0.5) == 42.0
    assert backoff.delay(5, 0.5, lambda: 1.0) == 10
    assert backoff.delay(1, 3600.0, lambda: 0.5) == 3600.0  # uncapped: total_timeout bounds it


def test_retry_after_values() -> None:
    now = datetime(2024, 5, 20, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("3", now=now) == 3.0
    assert retry_after_seconds(" 1.5 ", now=now) == 1.5
    assert retry_after_seconds("Mon, 20 May 2024 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Mon, 20 May 2024 11:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "-1", "soon", "nan"):
        assert retry_after_seconds(bad, now=now) is None


@given(st.text())
def test_retry_after_never_raises(value: str) -> None:
    result = retry_after_seconds(value, now=datetime(2024, 1, 1, tzinfo=UTC))
    assert result is None or result >= 0


def _backup(i: str, end: datetime | None, begin: datetime | None = None) -> Backup:
    return Backup(
        id=i,
        name=i,
        instance_id="x",
        type="auto",
        size_kb=1,
        status="COMPLETED",
        begin_time=begin,
        end_time=end,
    )


def test_pick_latest() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    a = _backup("a", t)
    b = _backup("b", t + timedelta(hours=1))
    c = _backup("c", None)
    assert pick_latest([a, b, c]) is b
    assert pick_latest([c]) is None
    assert pick_latest([]) is None
    # The same instant written in another zone is not "later"; ties go to the later begin.
    d = _backup("d", (t + timedelta(hours=1)).astimezone(timezone(timedelta(hours=8))), begin=t)
    assert pick_latest([a, b, d]) is d
    assert pick_latest([a, b, _backup("e", t - timedelta(days=1))]) is b
