"""Instances whose backups form realistic point-in-time chains, for ``--to-time``.

Each has daily full backups and incremental backups every few minutes whose begin and end
times abut, plus the noise a real list shows (a BUILDING backup in progress, FAILED ones that
were retried). Files are tiny (a few KiB) so that a chain of dozens of backups downloads in
moments. Times are at +08:00, as RDS shows them; all ids are stable:

``CHAIN_MYSQL_INSTANCE`` (MySQL 8.0)
    fulls (auto) at 02:00 on 2024-05-18, -19 and -20, 12 minutes each; an incremental
    (one binlog file) every 10 minutes from 2024-05-18 02:00 to 2024-05-20 12:00 (348 of
    them, so ListBackups takes four pages); a FAILED manual full, a FAILED incremental
    retried at once, and a BUILDING incremental (12:00-12:10). E.g. ``--to-time
    2024-05-20T02:45:00+08:00`` is the 2024-05-20 full and five incrementals.
``CHAIN_GAP_INSTANCE`` (MySQL 8.0)
    one full at 2024-05-20 02:00 and incrementals every 10 minutes to 08:00, except that
    nothing covers 05:00-05:10 (the 05:00 incremental FAILED and was never retried).
``CHAIN_PG_INSTANCE`` (PostgreSQL 15)
    fulls at 03:00 on 2024-05-19 and -20 (a base tar), incrementals (WAL segments) every
    15 minutes from 2024-05-19 03:00 to 2024-05-20 09:00.
``CHAIN_DIFF_INSTANCE`` (MySQL 8.0)
    a full at 2024-05-20 02:00 (12 minutes), differential fulls (``fragment``) at 05:00 and
    08:00 (6 minutes each), incrementals every 10 minutes from 02:00 to 12:00. E.g.
    ``--to-time 2024-05-20T09:05:00+08:00`` is the full, the 08:00 differential and the seven
    incrementals from 08:00 to 09:10; ``2024-05-20T02:12:00+08:00`` is the full alone.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from downloader.sim.records import KIB, SimBackup, SimFile

__all__ = [
    "CHAIN_DIFF_INSTANCE",
    "CHAIN_GAP_INSTANCE",
    "CHAIN_MYSQL_INSTANCE",
    "CHAIN_PG_INSTANCE",
    "chain_catalog",
    "chain_id_for",
]

CHAIN_MYSQL_INSTANCE = "7c1e5d0b2a9f48e6b3d1c0a9f8e7d6c5in01"
CHAIN_GAP_INSTANCE = "4b8a2f6e1d3c47a9b0e5f1c2d3a4b5c6in01"
CHAIN_PG_INSTANCE = "9e2d4c6b8a0f41e3d5c7b9a1f3e5d7c9in03"
CHAIN_DIFF_INSTANCE = "2d6f0a4c8e1b43d5a7c9e0f2b4d6a8c0in01"

RDS_TZ = timezone(timedelta(hours=8))
_MYSQL = ("MySQL", "8.0", "br01")
_PG = ("PostgreSQL", "15", "br03")


def chain_id_for(label: str, suffix: str) -> str:
    """A stable backup id (32 hex digits and the engine's suffix) from a label."""
    return hashlib.md5(label.encode(), usedforsecurity=False).hexdigest() + suffix


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=RDS_TZ)


def _size(seed: int, low_kib: int, spread_kib: int) -> int:
    # A few KiB, never a multiple of 1024 (the API's KB rounding stays visible).
    return (low_kib + seed * 7 % spread_kib) * KIB + 1 + seed * 131 % 1000


class _Builder:
    """Collects one instance's backups; ids derive from the instance and a label."""

    def __init__(self, instance: str, engine: tuple[str, str, str]) -> None:
        self.instance = instance
        self.engine, self.version, self.suffix = engine
        self.backups: list[SimBackup] = []

    def add(
        self,
        label: str,
        kind: str,
        status: str,
        begin: datetime,
        minutes: float,
        files: list[SimFile],
    ) -> SimBackup:
        backup = SimBackup(
            chain_id_for(f"{self.instance}/{label}", self.suffix),
            self.instance,
            f"sim-{self.engine.lower()}-{kind}-{begin:%Y%m%d%H%M}",
            kind,
            status,
            self.engine,
            self.version,
            begin.astimezone(RDS_TZ),
            (begin + timedelta(minutes=minutes)).astimezone(RDS_TZ),
            files if status == "COMPLETED" else [],
        )
        self.backups.append(backup)
        return backup

    def mysql_full(self, label: str, begin: datetime, status: str = "COMPLETED") -> None:
        bid = chain_id_for(f"{self.instance}/{label}", self.suffix)
        stamp = f"{begin:%Y-%m-%d_%H-%M-%S}"
        n = len(self.backups)
        files = [
            SimFile(f"{bid}_full_{stamp}_1.qp", _size(n, 40, 20)),
            SimFile(f"{bid}_full_{stamp}_meta.qp", _size(n + 1, 1, 3)),
        ]
        self.add(label, "auto" if status == "COMPLETED" else "manual", status, begin, 12, files)

    def binlog(self, seq: int, begin: datetime, minutes: float, status: str = "COMPLETED") -> None:
        label = f"binlog-{seq}" if status == "COMPLETED" else f"binlog-{seq}-{status}"
        files = [SimFile(f"mysql-bin.{seq:06d}", _size(seq, 2, 6))]
        self.add(label, "incremental", status, begin, minutes, files)


def _mysql_chain() -> list[SimBackup]:
    b = _Builder(CHAIN_MYSQL_INSTANCE, _MYSQL)
    for day in (18, 19, 20):
        b.mysql_full(f"full-{day}", _at(day, 2))
    b.mysql_full("manual-failed", _at(19, 14, 5), status="FAILED")
    start, step = _at(18, 2), timedelta(minutes=10)
    count = int((_at(20, 12) - start) / step)  # 348
    for i in range(count):
        begin = start + i * step
        if i == 100:
            # A binlog backup that failed, then succeeded on retry for the same span.
            b.binlog(i + 1, begin, 10, status="FAILED")
        b.binlog(i + 1, begin, 10)
    b.binlog(count + 1, start + count * step, 10, status="BUILDING")
    return b.backups


def _gap_chain() -> list[SimBackup]:
    b = _Builder(CHAIN_GAP_INSTANCE, _MYSQL)
    b.mysql_full("full-20", _at(20, 2))
    start, step = _at(20, 2), timedelta(minutes=10)
    for i in range(36):  # 02:00 to 08:00
        begin = start + i * step
        status = "FAILED" if begin == _at(20, 5) else "COMPLETED"
        b.binlog(i + 1, begin, 10, status=status)
    return b.backups


def _diff_chain() -> list[SimBackup]:
    b = _Builder(CHAIN_DIFF_INSTANCE, _MYSQL)
    b.mysql_full("full-20", _at(20, 2))
    for hour in (5, 8):
        begin = _at(20, hour)
        bid = chain_id_for(f"{b.instance}/fragment-{hour}", b.suffix)
        stamp = f"{begin:%Y-%m-%d_%H-%M-%S}"
        files = [SimFile(f"{bid}_fragment_{stamp}_1.qp", _size(hour, 8, 4))]
        b.add(f"fragment-{hour}", "fragment", "COMPLETED", begin, 6, files)
    start, step = _at(20, 2), timedelta(minutes=10)
    for i in range(60):  # 02:00 to 12:00
        b.binlog(i + 1, start + i * step, 10)
    return b.backups


def _pg_chain() -> list[SimBackup]:
    b = _Builder(CHAIN_PG_INSTANCE, _PG)
    for day in (19, 20):
        begin = _at(day, 3)
        bid = chain_id_for(f"{b.instance}/full-{day}", b.suffix)
        stamp = f"{begin:%Y-%m-%d_%H-%M-%S}"
        files = [SimFile(f"{bid}_base_{stamp}.tar.gz", _size(day, 30, 10))]
        b.add(f"full-{day}", "auto", "COMPLETED", begin, 20, files)
    start, step = _at(19, 3), timedelta(minutes=15)
    count = int((_at(20, 9) - start) / step)
    for i in range(count):
        segment = f"{1:08X}{0:08X}{i + 1:08X}"  # timeline 1, log 0, segment i+1
        files = [SimFile(f"{segment}.gz", _size(i, 2, 4))]
        b.add(f"wal-{i + 1}", "incremental", "COMPLETED", start + i * step, 15, files)
    b.add("wal-building", "incremental", "BUILDING", start + count * step, 15, [])
    return b.backups


def chain_catalog() -> list[SimBackup]:
    """Every chain instance's backups (ids in the module docstring)."""
    return [*_mysql_chain(), *_gap_chain(), *_pg_chain(), *_diff_chain()]
