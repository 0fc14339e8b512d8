"""Reading an API answer's body whole, within a cap."""

from __future__ import annotations

import aiohttp

from downloader.errors import ResponseFormatError


async def read_body(content: aiohttp.StreamReader, cap: int) -> bytes:
    """The whole body, or ResponseFormatError past ``cap`` bytes. (One ``read(n)`` returns
    what has arrived so far, not the whole body: a long listing comes in several pieces.)"""
    parts: list[bytes] = []
    size = 0
    while chunk := await content.read(cap + 1 - size):
        parts.append(chunk)
        size += len(chunk)
        if size > cap:
            raise ResponseFormatError("response", "body is too big")
    return b"".join(parts)
