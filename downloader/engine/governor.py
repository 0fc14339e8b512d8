"""Use as many connections as pay, up to the budget.

On a fast path (loopback, a LAN) the CPU is the limit and every extra connection only
costs: a run starts with a few. While every allowed connection is busy and each carries
less than SLOW_CONNECTION (a per-connection cap, as object storage over a real network
has), twice as many are allowed, every GOVERNOR_PERIOD, up to the budget; but not while
the event loop's thread is on the CPU nearly all the time. A doubling must pay: when the
run's total rate has not grown by PAYS a period later, the allowance goes back and stays
(TLS on a fast path, where decryption is the limit: more connections only add to its work
and to the buffers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from downloader.engine.scheduler import Scheduler
from downloader.results import RunStats
from downloader.text.fmt import format_rate

log = logging.getLogger("rds_backup.engine")

GOVERNOR_PERIOD = 0.25
SLOW_CONNECTION = 32 * 1024 * 1024  # bytes/s; faster connections mean the CPU is the limit
LOOP_SATURATED = 0.85  # share of the time the event loop's thread spent on the CPU
PAYS = 1.25  # a doubling pays when the run's total rate grows by this factor at least
SETTLE_PERIODS = 1  # periods after a doubling before its rate is judged
# A doubling is taken back only while the event loop's thread is this busy: then the CPU,
# not the network, is what more connections would have to share. On a long link the loop
# idles while new connections are still connecting, and a rate that has not grown yet
# proves nothing.
LOOP_BUSY = 0.5


def should_grow(*, busy: int, allowed: int, per_connection: float, loop_share: float) -> bool:
    """Whether twice as many connections would pay. Pure.

    Only while every allowed connection is busy, each carries less than a capped link, and
    the event loop has CPU to spare."""
    return busy >= allowed and per_connection < SLOW_CONNECTION and loop_share < LOOP_SATURATED


def paid(rate_before: float, rate_after: float, loop_share: float) -> bool:
    """Whether a doubling paid (or may yet): the run's total rate grew by PAYS at least,
    or the event loop is not busy enough for the CPU to be the limit. Pure. A period in
    which nothing moved proves nothing (every connection waiting on a slow or stalled
    server), so it does not count against the doubling either."""
    if rate_after == 0 or loop_share < LOOP_BUSY:
        return True
    return rate_after >= rate_before * PAYS


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
    workers run); returns once the whole budget is allowed, or once a doubling did not pay
    (then the allowance goes back to what it was). ``cpu`` is the CPU time of the event
    loop's thread (``time.thread_time``), ``clock`` the wall clock."""
    last = stats.bytes_fetched
    since, used = clock(), cpu()
    trial: tuple[int, float] | None = None  # the allowance and the rate before a doubling
    settle = 0
    while sched.soft_cap < budget or trial is not None:
        await sleep(GOVERNOR_PERIOD)
        fetched, last = stats.bytes_fetched - last, stats.bytes_fetched
        rate = fetched / GOVERNOR_PERIOD
        now, cpu_now = clock(), cpu()
        loop_share = (cpu_now - used) / max(now - since, 1e-6)
        since, used = now, cpu_now
        if trial is not None:
            if settle:  # the new connections are still connecting and starting
                settle -= 1
                continue
            (before, rate_before), trial = trial, None
            if not paid(rate_before, rate, loop_share):
                log.debug(
                    "%d connections carried %s, %d carried %s (event loop busy %.0f%%): back to %d",
                    sched.soft_cap,
                    format_rate(rate),
                    before,
                    format_rate(rate_before),
                    100 * loop_share,
                    before,
                )
                sched.allow(before)
                return
        per_connection = rate / max(1, sched.busy)
        if sched.soft_cap < budget and should_grow(
            busy=sched.busy,
            allowed=sched.soft_cap,
            per_connection=per_connection,
            loop_share=loop_share,
        ):
            trial, settle = (sched.soft_cap, rate), SETTLE_PERIODS
            sched.allow(sched.soft_cap * 2)
            log.debug(
                "%s per connection: allowing %d connections",
                format_rate(per_connection),
                sched.soft_cap,
            )
            await notify()
