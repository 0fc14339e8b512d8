"""The governor against a scheduler's allowance and a run whose rate the test sets: a
doubling of the connections stays only when the run's total rate grows with it."""

from __future__ import annotations

import asyncio

from downloader.governor import GOVERNOR_PERIOD, PAYS, govern, paid
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


async def run(rate_of: dict[int, float] | None, per_connection: float, start: int = 8) -> Allowance:
    """Govern a run that carries ``rate_of[allowed]`` bytes/s in total (or
    ``per_connection`` on each connection when ``rate_of`` is None)."""
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
            cpu=lambda: 0.0,
        ),
        5,
    )
    return sched


def test_paid() -> None:
    assert paid(0, 0) and paid(100, 100 * PAYS) and not paid(100, 100 * PAYS - 1)
    assert paid(100, 0)  # nothing moved at all: no evidence against the doubling


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


async def test_a_doubling_that_pays_a_little_is_kept_then_judged_again() -> None:
    sched = await run({8: 80 * MIB, 16: 120 * MIB, 32: 130 * MIB}, 0)
    assert sched.history == [8, 16, 32, 16]
    assert GOVERNOR_PERIOD > 0
