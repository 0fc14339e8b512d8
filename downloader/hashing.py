"""A file's checksums: which ones it gets, and the one loop that reads a whole file.

Every file gets a CRC-64 (combined from pieces as it is written, :mod:`downloader.digest`);
SHA-256 with ``--sha256``; MD5 where the object's ETag is a plain MD5 (a single-PUT
object's), to compare with it. :class:`Digests` holds one file's set; :func:`hash_file`
is the whole-file read that the engine (a file found in place), ``verify`` and the demo
share.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from downloader.digest import Crc64, PieceLog

HASH_SPAN = 1024 * 1024  # bytes read back per step
_MD5_ETAG = re.compile(r'^"?[0-9a-fA-F]{32}"?$')


def is_plain_md5_etag(etag: str | None) -> bool:
    """A single-PUT object's ETag is the MD5 of its bytes; a multipart one (``"…-3"``) is not."""
    return bool(etag and _MD5_ETAG.match(etag))


def etag_md5(etag: str | None) -> str | None:
    """The MD5 a plain-MD5 ETag names (lower case, unquoted), else None."""
    return etag.strip('"').lower() if etag and is_plain_md5_etag(etag) else None


def _md5() -> Any:
    # MD5 here checks integrity against the object's ETag; it protects nothing secret.
    return hashlib.md5(usedforsecurity=False)


@dataclass(slots=True)
class Digests:
    """The running checksums of one file's bytes, in file order."""

    crc64: Crc64 = field(default_factory=Crc64)
    sha256: Any = None
    md5: Any = None

    @classmethod
    def for_file(cls, *, sha256: bool, md5: bool) -> Digests:
        return cls(Crc64(), hashlib.sha256() if sha256 else None, _md5() if md5 else None)

    @property
    def reads_back(self) -> bool:
        """SHA-256 and MD5 do not combine: a file that needs them is read back in order."""
        return self.sha256 is not None or self.md5 is not None

    def new_piece_log(self) -> PieceLog | None:
        """Pieces of CRC-64 from the writes, when CRC-64 is all this file needs."""
        return None if self.reads_back else PieceLog()

    def update(self, data: Any) -> None:
        self.crc64.update(data)
        for h in (self.sha256, self.md5):
            if h is not None:
                h.update(data)

    def update_others(self, data: Any) -> None:
        """Everything but the CRC-64 (which took the same bytes as a piece)."""
        for h in (self.sha256, self.md5):
            if h is not None:
                h.update(data)

    def sha256_hex(self) -> str | None:
        return self.sha256.hexdigest() if self.sha256 is not None else None

    def md5_hex(self) -> str | None:
        return self.md5.hexdigest() if self.md5 is not None else None


def read_span(fd: int, offset: int, n: int, digests: Digests) -> int:
    """Hash ``n`` bytes of an open file from ``offset`` (a blocking call: run it in a
    thread); returns how many bytes there were."""
    data = os.pread(fd, n, offset)
    digests.update(data)
    return len(data)


def hash_file(
    path: Path,
    *,
    sha256: bool = False,
    md5: bool = False,
    progress: Callable[[int], None] | None = None,
    block: int = 4 * 1024 * 1024,
) -> Digests:
    """Read a whole file once and return its checksums. ``progress`` gets each block's size."""
    digests = Digests.for_file(sha256=sha256, md5=md5)
    with open(path, "rb") as fh:
        while data := fh.read(block):
            digests.update(data)
            if progress is not None:
                progress(len(data))
    return digests
