"""Use as many connections as pay, up to the budget.

On a fast path (loopback, a LAN) the CPU is the limit and every extra connection only
costs: a run starts with a few. While every allowed connection is busy and each carries
less than SLOW_CONNECTION (a per-connection cap, as object storage over a real network
has), twice as many are allowed, every GOVERNOR_PERIOD, up to the budget.
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


async def govern(
    sched: Scheduler,
    stats: RunStats,
    *,
    budget: int,
    sleep: Callable[[float], Awaitable[None]],
    notify: Callable[[], Awaitable[None]],
) -> None:
    """Raise ``sched``'s allowance while it pays (set the starting allowance before the
    workers run); returns once the whole budget is allowed."""
    last = stats.bytes_fetched
    while sched.soft_cap < budget:
        await sleep(GOVERNOR_PERIOD)
        fetched, last = stats.bytes_fetched - last, stats.bytes_fetched
        per_connection = fetched / GOVERNOR_PERIOD / max(1, sched.busy)
        if sched.busy >= sched.soft_cap and per_connection < SLOW_CONNECTION:
            sched.allow(sched.soft_cap * 2)
            log.debug(
                "%s per connection: allowing %d connections",
                format_rate(per_connection),
                sched.soft_cap,
            )
            await notify()
