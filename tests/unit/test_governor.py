"""The governor against a scheduler's allowance and a run whose rate the test sets: a
doubling of the connections stays only when the run's total rate grows with it."""

from __future__ import annotations

import asyncio

from downloader.engine.governor import GOVERNOR_PERIOD, PAYS, govern, paid
from downloader.results import RunStats

MIB = 1024 * 1024


class Allowance:
    """The scheduler's side the governor sees: the allowance, and every allowed connection
    busy."""

    def __init__(self, start: int, budget: int) -> None:
        self.soft_cap = start
        self.budget = budget
        self.history = [start]

    @property
    def busy(self) -> int:
        return self.soft_cap

    def allow(self, connections: int) -> None:
        self.soft_cap = min(connections, self.budget)
        self.history.append(self.soft_cap)


async def run(
    rate_of: dict[int, float] | None,
    per_connection: float,
    start: int = 8,
    loop_share: float = 0.7,
) -> Allowance:
    """Govern a run that carries ``rate_of[allowed]`` bytes/s in total (or
    ``per_connection`` on each connection when ``rate_of`` is None), its event loop's
    thread on the CPU ``loop_share`` of the time."""
    sched = Allowance(start, 32)
    stats = RunStats()
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        total = per_connection * sched.soft_cap if rate_of is None else rate_of[sched.soft_cap]
        stats.bytes_fetched += int(total * seconds)
        await asyncio.sleep(0)

    async def notify() -> None:
        pass

    await asyncio.wait_for(
        govern(
            sched,  # type: ignore[arg-type]
            stats,
            budget=32,
            sleep=sleep,
            notify=notify,
            clock=lambda: now[0],
            cpu=lambda: now[0] * loop_share,
        ),
        5,
    )
    return sched


def test_paid() -> None:
    busy = 0.9
    assert paid(0, 0, busy) and paid(100, 100 * PAYS, busy) and not paid(100, 100 * PAYS - 1, busy)
    assert paid(100, 0, busy)  # nothing moved at all: no evidence against the doubling
    assert paid(100, 100, 0.1)  # an idle loop: the CPU is not the limit, wait and see


async def test_capped_links_grow_to_the_budget() -> None:
    # 8 MiB/s on each connection (object storage over a real network): each doubling pays.
    sched = await run(None, 8 * MIB)
    assert sched.history == [8, 16, 32]


async def test_a_doubling_that_does_not_pay_is_taken_back() -> None:
    # The CPU is the limit: 100 MiB/s in total however many connections (12.5 MiB/s each at
    # 8, slow enough to try 16); 16 carry no more, so the run goes back to 8 and stays.
    sched = await run({8: 100 * MIB, 16: 100 * MIB}, 0)
    assert sched.history == [8, 16, 8]
    assert sched.soft_cap == 8


async def test_a_doubling_not_paid_yet_on_a_long_link_is_kept() -> None:
    # The new connections are still connecting (a long round trip) and the event loop
    # idles: the rate has not grown yet, which proves nothing.
    sched = await run({8: 100 * MIB, 16: 100 * MIB, 32: 100 * MIB}, 0, loop_share=0.1)
    assert sched.history == [8, 16, 32]


async def test_a_doubling_that_pays_a_little_is_kept_then_judged_again() -> None:
    sched = await run({8: 80 * MIB, 16: 120 * MIB, 32: 130 * MIB}, 0)
    assert sched.history == [8, 16, 32, 16]
    assert GOVERNOR_PERIOD > 0
