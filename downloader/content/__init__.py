"""A backup's own structure, checked as its bytes pass (pure, incremental parsers).

The formats the backups come in carry their own checksums: MySQL's ``.qp`` is an xbstream
(a CRC-32 per chunk, :mod:`.xbstream`), PostgreSQL's ``.tar.gz`` a gzip (CRC-32 and length
per member) of a tar (a checksum per header, :mod:`.targz`), binlogs have per-event
CRC-32s (:mod:`.binlog`), SQL Server's ``.bak`` is Microsoft Tape Format (header
checksums, :mod:`.mtf`). :func:`checker_for` picks the parser from the file's first bytes
(:mod:`.dispatch`); each takes the file's bytes in order (``feed``), in pieces of any size,
holds no more than one header's worth of them, and ends with a
:class:`~downloader.results.ContentVerdict` (``finish``). Nothing here does I/O: the engine
feeds the bytes as they land, ``verify`` and ``cat`` as they read or write them.

May import: ``downloader.errors``, ``models``, ``results``, ``ranges``, ``text``.
"""

from downloader.content.base import Checker
from downloader.content.dispatch import checker_for

__all__ = ["Checker", "checker_for"]
