"""downloader.wire.ratelimit: --limit-rate values, and the token bucket's arithmetic under a fake
clock (no test here waits or measures a speed)."""

from __future__ import annotations

import asyncio

import pytest
from fakes import FakeClock

from downloader.errors import UsageError
from downloader.ranges import MIB
from downloader.wire.ratelimit import RateLimiter, parse_rate

KIB = 1024


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50M", 50 * MIB),
        ("1k", 1024),
        ("2.5M", int(2.5 * MIB)),
        ("100KiB/s", 100 * 1024),
        ("1G", 1024 * MIB),
        ("4096", 4096),
    ],
)
def test_parse_rate(text: str, value: int) -> None:
    assert parse_rate(text) == value


@pytest.mark.parametrize("text", ["fast", "", "10", "-5M", "5X"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


async def transfer(
    limiter: RateLimiter, clock: FakeClock, total: int, *, read: int, wire: float
) -> float:
    """Take ``total`` bytes in reads of ``read`` bytes, each ``wire`` seconds off the network
    (a link faster than the limit); returns the seconds from the first byte to the end."""
    start = clock.now
    left = total
    while left > 0:
        n = min(read, left)
        clock.advance(wire)
        await limiter.take(n)
        left -= n
    return clock.now - start


@pytest.mark.parametrize("seconds", [0.5, 1, 3, 10])
async def test_a_short_transfer_averages_at_most_the_limit(seconds: float) -> None:
    rate = 60 * MIB
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    clock.advance(5)  # listing and connecting: the bucket must not fill meanwhile
    total = int(rate * seconds)
    took = await transfer(limiter, clock, total, read=64 * KIB, wire=0.0001)
    assert total / took <= rate * (1 + 1e-9), total / took / MIB  # a full bucket: 67 MiB/s
    assert total / took >= rate * 0.99  # and the limit, not less


async def test_connections_together_share_the_limit() -> None:
    rate = 2 * MIB
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    start = clock.now
    each = 3 * MIB
    await asyncio.gather(
        *(transfer(limiter, clock, each, read=16 * KIB, wire=0.0) for _ in range(4))
    )
    assert 4 * each / (clock.now - start) <= rate * (1 + 1e-9)
    assert clock.now - start == pytest.approx(4 * each / rate)


async def test_a_pause_refills_at_most_a_quarter_second() -> None:
    rate = 8 * MIB
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    await limiter.take(MIB)
    clock.advance(60)  # a long wait on the network
    before = len(clock.sleeps)
    free = 0
    while len(clock.sleeps) == before:
        await limiter.take(64 * KIB)
        free += 64 * KIB
    assert free - 64 * KIB <= rate / 4 < free  # taken without waiting: a quarter second
