"""The current download link of each file, and when to fetch fresh ones.

Links are presigned and die at ``link_expired_time`` (lifetime undocumented; sister APIs say
5-15 minutes). Before each range request the engine asks :meth:`LinkResolver.current`; when
the link is within ``margin`` seconds of its expiry (measured on the server's clock, whose
offset from ours comes from the ``Date`` headers of the API and the object store), or after
a 403, the backup's file list is fetched again. Re-resolution is single-flight: however
many connections ask at once, one API call is made and all of them wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from downloader.errors import FileGoneError, LinkRefusedError, RdsBackupError
from downloader.models import BackupFile, FileListing

log = logging.getLogger("rds_backup.resolver")

Fetch = Callable[[], Awaitable[FileListing]]


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    expires: float | None  # epoch seconds on the server's clock; None = unknown
    generation: int  # which resolution produced it
    issued: float  # server-clock time it was resolved


def decide_refresh(link: Link, server_now: float, margin: float) -> bool:
    """Pure: should this link be replaced before it is used?

    The margin never exceeds a quarter of the link's lifetime, so links that live only
    seconds are still used instead of being re-resolved before every request.
    """
    if link.expires is None:
        return False
    lifetime = link.expires - link.issued
    effective = min(margin, max(0.0, lifetime) / 4)
    return server_now >= link.expires - effective


class LinkResolver:
    def __init__(
        self,
        listing: FileListing,
        fetch: Fetch | None,
        *,
        margin: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self.margin = margin
        self._clock = clock
        self.generation = 0
        self.resolutions = 0  # API calls made after the first listing
        self.refusals = 0  # 403s reported by transfers
        self._skew: float | None = None  # server clock minus ours, seconds
        self._files: dict[str, BackupFile] = {}
        self._gone: dict[str, str] = {}
        self._inflight: asyncio.Future[None] | None = None
        self._issued = 0.0
        self._install(listing, first=True)

    @property
    def can_refresh(self) -> bool:
        return self._fetch is not None

    @property
    def skew(self) -> float:
        return self._skew or 0.0

    def observe_server_date(
        self, server_date: datetime | None, local_now: float | None = None
    ) -> None:
        """Record the server's clock from a ``Date`` header (whole seconds)."""
        if server_date is None:
            return
        local = self._clock() if local_now is None else local_now
        skew = server_date.timestamp() - local
        # Date has one-second resolution: keep the first reading unless a new one differs by
        # more than that, so noise does not wobble the estimate.
        if self._skew is None or abs(skew - self._skew) > 1.5:
            if self._skew is not None or abs(skew) > 1.5:
                log.debug("server clock differs from ours by %.0f s", skew)
            self._skew = skew

    def server_now(self) -> float:
        return self._clock() + self.skew

    def _install(self, listing: FileListing, *, first: bool = False) -> None:
        self.observe_server_date(listing.server_date)
        new = {f.name: f for f in listing.files}
        if not first:
            for name, old in self._files.items():
                if name in self._gone:
                    continue
                fresh = new.get(name)
                if fresh is None:
                    self._gone[name] = "the backup no longer lists this file (deleted or changed)"
                elif fresh.size_kb != old.size_kb:
                    self._gone[name] = (
                        f"the backup now reports {fresh.size_kb} KB instead of {old.size_kb} KB"
                    )
        self._files = new
        self._issued = self.server_now()
        self.generation += 1

    def file(self, name: str) -> BackupFile:
        return self._files[name]

    def current(self, name: str) -> Link:
        if name in self._gone:
            raise FileGoneError(self._gone[name], file=name)
        f = self._files[name]
        exp = f.link_expired_time.timestamp() if f.link_expired_time else None
        return Link(f.download_link, exp, self.generation, self._issued)

    async def fresh(self, name: str) -> Link:
        """The link to use now: re-resolves first when the current one is about to expire."""
        link = self.current(name)
        if self._fetch is not None and decide_refresh(link, self.server_now(), self.margin):
            try:
                await self.refresh(link.generation, reason="link about to expire")
            except RdsBackupError as exc:
                # Renewing early failed (after the API client's own retries). The current
                # link may still work: use it until it is refused, then a 403 decides.
                if link.expires is not None and self.server_now() >= link.expires:
                    raise
                log.warning("could not renew links early (%s); using the current ones", exc)
                return link
            link = self.current(name)
        return link

    async def refused(self, name: str, link: Link) -> Link:
        """A transfer got 403 with ``link``: re-resolve (once per generation) and return the
        new link, or raise if the link cannot be renewed."""
        self.refusals += 1
        if self._fetch is None:
            raise LinkRefusedError(
                "link refused (403) and links from --links-file cannot be re-resolved", file=name
            )
        await self.refresh(link.generation, reason="403 from object store")
        new = self.current(name)
        return new

    async def refresh(self, seen_generation: int, *, reason: str) -> None:
        """Single-flight re-resolution: a caller that saw generation N triggers at most one
        API call producing N+1; everyone else waits for it."""
        if self._fetch is None:
            return
        while self.generation <= seen_generation:
            if self._inflight is None:
                self._inflight = asyncio.get_running_loop().create_future()
                fut = self._inflight
                try:
                    log.info("re-resolving download links (%s)", reason)
                    listing = await self._fetch()
                    self.resolutions += 1
                    self._install(listing)
                    fut.set_result(None)
                except asyncio.CancelledError:
                    fut.cancel()  # a waiter will take over the call
                    raise
                except Exception as exc:
                    fut.set_exception(exc)
                    fut.exception()  # retrieved: waiters re-raise it themselves
                    raise
                finally:
                    self._inflight = None
            else:
                fut = self._inflight
                await asyncio.wait([fut])
                if not fut.cancelled() and fut.exception() is not None:
                    raise fut.exception()  # type: ignore[misc]
