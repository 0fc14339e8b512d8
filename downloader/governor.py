"""Use as many connections as pay, up to the budget.

On a fast path (loopback, a LAN) the CPU is the limit and every extra connection only
costs: a run starts with a few. While every allowed connection is busy and each carries
less than SLOW_CONNECTION (a per-connection cap, as object storage over a real network
has), twice as many are allowed, every GOVERNOR_PERIOD, up to the budget; but not while
the event loop's thread is on the CPU nearly all the time (TLS on a fast path: decryption
is the limit, and another connection would only add to its work and its buffers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from downloader.results import RunStats
from downloader.scheduler import Scheduler
from downloader.textfmt import format_rate

log = logging.getLogger("rds_backup.engine")

GOVERNOR_PERIOD = 0.25
SLOW_CONNECTION = 32 * 1024 * 1024  # bytes/s; faster connections mean the CPU is the limit
LOOP_SATURATED = 0.85  # share of the time the event loop's thread spent on the CPU


def should_grow(*, busy: int, allowed: int, per_connection: float, loop_share: float) -> bool:
    """Whether twice as many connections would pay. Pure.

    Only while every allowed connection is busy, each carries less than a capped link, and
    the event loop has CPU to spare."""
    return busy >= allowed and per_connection < SLOW_CONNECTION and loop_share < LOOP_SATURATED


async def govern(
    sched: Scheduler,
    stats: RunStats,
    *,
    budget: int,
    sleep: Callable[[float], Awaitable[None]],
    notify: Callable[[], Awaitable[None]],
    clock: Callable[[], float],
    cpu: Callable[[], float],
) -> None:
    """Raise ``sched``'s allowance while it pays (set the starting allowance before the
    workers run); returns once the whole budget is allowed. ``cpu`` is the CPU time of
    the event loop's thread (``time.thread_time``), ``clock`` the wall clock."""
    last = stats.bytes_fetched
    since, used = clock(), cpu()
    while sched.soft_cap < budget:
        await sleep(GOVERNOR_PERIOD)
        fetched, last = stats.bytes_fetched - last, stats.bytes_fetched
        per_connection = fetched / GOVERNOR_PERIOD / max(1, sched.busy)
        now, cpu_now = clock(), cpu()
        loop_share = (cpu_now - used) / max(now - since, 1e-6)
        since, used = now, cpu_now
        if should_grow(
            busy=sched.busy,
            allowed=sched.soft_cap,
            per_connection=per_connection,
            loop_share=loop_share,
        ):
            sched.allow(sched.soft_cap * 2)
            log.debug(
                "%s per connection: allowing %d connections",
                format_rate(per_connection),
                sched.soft_cap,
            )
            await notify()
