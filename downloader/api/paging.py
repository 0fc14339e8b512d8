"""Every page of a listing (backups, instances): offset/limit until ``total_count``, each
item once, and a stop with a warning when the API's paging cannot be trusted."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from downloader.models import Backup, Instance

__all__ = ["MAX_PAGES", "all_pages"]

log = logging.getLogger("rds_backup.api.client")

MAX_PAGES = 1000  # a server that never reaches total_count must not page forever

_Listed = TypeVar("_Listed", Backup, Instance)  # what a paged listing holds


async def all_pages(
    fetch: Callable[[list[tuple[str, str]]], Awaitable[object]],
    resource: str,
    base: list[tuple[str, str]],
    parse: Callable[[object], tuple[list[_Listed], int]],
    page_size: int,
) -> list[_Listed]:
    """Every page of a listing (offset/limit until total_count), each item once.

    A page that brings nothing new ends the paging with a warning: an API that ignores
    ``offset`` answers the first page again and again, and one that claims a total it
    never reaches would otherwise be paged ``MAX_PAGES`` times."""
    found: dict[str, _Listed] = {}
    offset = total = 0
    for _ in range(MAX_PAGES):
        query = [*base, ("offset", str(offset)), ("limit", str(page_size))]
        page, total = parse(await fetch(query))
        before = len(found)
        for item in page:
            found.setdefault(item.id, item)  # the list may shift while we page
        offset += len(page)
        if not page or offset >= total:
            return list(found.values())
        if len(found) == before:
            log.warning(
                "the %s list at offset %d repeats items already listed (total_count %d); "
                "stopping with the %d found",
                resource,
                offset - len(page),
                total,
                len(found),
            )
            return list(found.values())
    log.warning(
        "the %s list still claims more after %d pages (total_count %d); stopping with the %d found",
        resource,
        MAX_PAGES,
        total,
        len(found),
    )
    return list(found.values())
