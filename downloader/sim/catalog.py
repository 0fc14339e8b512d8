"""Backups and files the simulator serves, and the versioned content behind each file.

``default_catalog()`` is small and stable; tests may rely on these ids:

Instances
    ``f275a18b123fea3474caa1d0cf2903dcin01``  MySQL 8.0       (``MYSQL_INSTANCE``)
    ``a337fedb8c3ece52ee06ef668dabc0d2in04``  SQL Server 2019 (``SQLSERVER_INSTANCE``)
    ``ef8fe072ddd203750365ad33c6a04776in03``  PostgreSQL 15   (``PG_INSTANCE``)

Backups (MySQL instance unless said otherwise)
    ``a82f62762401f33d9d663175c272f2bdbr01``  ``MYSQL_FULL``       auto, COMPLETED, newest full;
        files: 3 MiB+123 B, 1 MiB+1 B, 777 B, 0 B
    ``ad17255ea0a712ca967518fa83cca95ebr01``  ``MYSQL_OLD_FULL``   auto, COMPLETED, a day older;
        one file of 100 KiB+5 B
    ``61cf98d52120f032d78e2a4901b4ff25br01``  ``MYSQL_BINLOG``     incremental, COMPLETED;
        two binlog files
    ``b8c9e0e730aaf053e95d78533037599abr01``  ``MYSQL_BUILDING``   manual, BUILDING (newest of all)
    ``4d5d8751de0b5fa30d608cc11bef6ababr01``  ``MYSQL_FAILED``     manual, FAILED, no files
    ``0bebbcf59e9f603ed7d7b3ba584409a9br01``  ``MYSQL_MULTIPART``  manual, COMPLETED;
        one 2 MiB+333 B file whose ETag has the multipart shape ``"<32hex>-3"``
    ``295d31bdcd42af42d97cf6faede7fcc1br01``  ``MYSQL_MANY``       manual, COMPLETED;
        40 files of 20-200 KiB (sizes not multiples of 1024)
    ``5f9de0d2354336832c905a7c63ea612bbr04``  ``SQLSERVER_DB``     SQL Server, manual,
        COMPLETED, database level: sales.bak, hr.bak, inventory.bak (hundreds of KiB)
    ``ba23e25b0e81e042b2593d20575d4a14br04``  ``SQLSERVER_FULL``   SQL Server, auto, COMPLETED
    ``5df87d8448fbe91bdd0ca2d794a792bfbr04``  ``SQLSERVER_FAILED`` SQL Server, auto, FAILED
    ``edc692382a731192fc26c16d8a7bd7e3br03``  ``PG_FULL``          PostgreSQL, auto, COMPLETED

Point-in-time chains (``downloader.sim.chains``, on instances of their own): a MySQL instance
with three daily fulls and 348 abutting incrementals, one with a gap, a PostgreSQL one.

``demo_catalog()``: ``DEMO_FULL`` (``7591d8dfdca50ce7414816803dbe1bb7br01``, about 240 MiB
in five MySQL files) and an older small ``DEMO_OLD`` (``00ac6cce9170225ab6d67ef4bf542d95br01``),
both on instance ``DEMO_INSTANCE`` (``e64c3ab2d2f3d3c35192a4f7f3f46e62in01``).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastcrc.crc64 import xz as crc64_xz

from downloader.sim.chains import chain_catalog
from downloader.sim.records import KIB, MIB, SimBackup, SimFile
from downloader.sim.shapes import iter_shaped

MYSQL_INSTANCE = "f275a18b123fea3474caa1d0cf2903dcin01"
SQLSERVER_INSTANCE = "a337fedb8c3ece52ee06ef668dabc0d2in04"
PG_INSTANCE = "ef8fe072ddd203750365ad33c6a04776in03"

MYSQL_FULL = "a82f62762401f33d9d663175c272f2bdbr01"
MYSQL_OLD_FULL = "ad17255ea0a712ca967518fa83cca95ebr01"
MYSQL_BINLOG = "61cf98d52120f032d78e2a4901b4ff25br01"
MYSQL_BUILDING = "b8c9e0e730aaf053e95d78533037599abr01"
MYSQL_FAILED = "4d5d8751de0b5fa30d608cc11bef6ababr01"
MYSQL_MULTIPART = "0bebbcf59e9f603ed7d7b3ba584409a9br01"
MYSQL_MANY = "295d31bdcd42af42d97cf6faede7fcc1br01"
SQLSERVER_DB = "5f9de0d2354336832c905a7c63ea612bbr04"
SQLSERVER_FULL = "ba23e25b0e81e042b2593d20575d4a14br04"
SQLSERVER_FAILED = "5df87d8448fbe91bdd0ca2d794a792bfbr04"
PG_FULL = "edc692382a731192fc26c16d8a7bd7e3br03"

# Content-shaped backups (a real xbstream, a real tar.gz), on instances of their own.
SHAPED_MYSQL_INSTANCE = "5c0e4a1f3b2d49e8a7f6c5d4e3b2a190in01"
SHAPED_PG_INSTANCE = "7d1f5b2a4c3e4a09b8e7d6c5f4a3b201in03"
SHAPED_MYSQL = "c4a3b2e1d0f94e8b8a7c6d5e4f3a2b10br01"
SHAPED_PG = "d5b4c3f2e1a04f9c9b8d7e6f5a4b3c21br03"

DEMO_INSTANCE = "e64c3ab2d2f3d3c35192a4f7f3f46e62in01"
DEMO_FULL = "7591d8dfdca50ce7414816803dbe1bb7br01"
DEMO_OLD = "00ac6cce9170225ab6d67ef4bf542d95br01"


_T0 = datetime(2024, 5, 20, 18, 0, 0, tzinfo=UTC)


def _at(hours_before: float, duration_min: float) -> tuple[datetime, datetime]:
    begin = _T0 - timedelta(hours=hours_before)
    return begin, begin + timedelta(minutes=duration_min)


def _many_sizes(count: int) -> list[int]:
    # 20-200 KiB, spread deterministically, never a multiple of 1024.
    sizes = []
    for i in range(count):
        kib = 20 + (i * 37) % 181
        sizes.append(kib * KIB + 1 + (i * 131) % 1000)
    return sizes


def default_catalog() -> list[SimBackup]:
    """The small, stable catalog the tests use (ids in the module docstring)."""
    b: list[SimBackup] = []

    begin, end = _at(2, 7)
    b.append(
        SimBackup(
            MYSQL_FULL,
            MYSQL_INSTANCE,
            "sim-mysql-auto-20240520",
            "auto",
            "COMPLETED",
            "MySQL",
            "8.0",
            begin,
            end,
            [
                SimFile(f"{MYSQL_FULL}_full_2024-05-20_16-00-00_1.qp", 3 * MIB + 123),
                SimFile(f"{MYSQL_FULL}_full_2024-05-20_16-00-00_2.qp", 1 * MIB + 1),
                SimFile(f"{MYSQL_FULL}_full_2024-05-20_16-00-00_meta.qp", 777),
                SimFile(f"{MYSQL_FULL}_full_2024-05-20_16-00-00_empty.qp", 0),
            ],
        )
    )
    begin, end = _at(26, 6)
    b.append(
        SimBackup(
            MYSQL_OLD_FULL,
            MYSQL_INSTANCE,
            "sim-mysql-auto-20240519",
            "auto",
            "COMPLETED",
            "MySQL",
            "8.0",
            begin,
            end,
            [SimFile(f"{MYSQL_OLD_FULL}_full_2024-05-19_16-00-00_1.qp", 100 * KIB + 5)],
        )
    )
    begin, end = _at(1, 60)
    b.append(
        SimBackup(
            MYSQL_BINLOG,
            MYSQL_INSTANCE,
            "sim-mysql-binlog-000123",
            "incremental",
            "COMPLETED",
            "MySQL",
            "8.0",
            begin,
            end,
            [
                SimFile("mysql-bin.000123", 256 * KIB + 17),
                SimFile("mysql-bin.000124", 64 * KIB + 900),
            ],
        )
    )
    begin, end = _at(0.2, 10)
    b.append(
        SimBackup(
            MYSQL_BUILDING,
            MYSQL_INSTANCE,
            "sim-mysql-manual-building",
            "manual",
            "BUILDING",
            "MySQL",
            "8.0",
            begin,
            end,
            [SimFile(f"{MYSQL_BUILDING}_full_partial_1.qp", 50 * KIB + 3)],
        )
    )
    begin, end = _at(5, 3)
    b.append(
        SimBackup(
            MYSQL_FAILED,
            MYSQL_INSTANCE,
            "sim-mysql-manual-failed",
            "manual",
            "FAILED",
            "MySQL",
            "8.0",
            begin,
            end,
            [],
        )
    )
    begin, end = _at(8, 5)
    b.append(
        SimBackup(
            MYSQL_MULTIPART,
            MYSQL_INSTANCE,
            "sim-mysql-manual-multipart",
            "manual",
            "COMPLETED",
            "MySQL",
            "8.0",
            begin,
            end,
            [
                SimFile(
                    f"{MYSQL_MULTIPART}_full_2024-05-20_10-00-00_1.qp",
                    2 * MIB + 333,
                    multipart_etag=True,
                )
            ],
        )
    )
    begin, end = _at(12, 9)
    b.append(
        SimBackup(
            MYSQL_MANY,
            MYSQL_INSTANCE,
            "sim-mysql-manual-many",
            "manual",
            "COMPLETED",
            "MySQL",
            "8.0",
            begin,
            end,
            [
                SimFile(f"{MYSQL_MANY}_full_2024-05-20_06-00-00_{i + 1:02d}.qp", size)
                for i, size in enumerate(_many_sizes(40))
            ],
        )
    )

    begin, end = _at(3, 4)
    b.append(
        SimBackup(
            SQLSERVER_DB,
            SQLSERVER_INSTANCE,
            "sim-sqlserver-db-level",
            "manual",
            "COMPLETED",
            "SQLServer",
            "2019_SE",
            begin,
            end,
            [
                SimFile(f"{SQLSERVER_DB}_sales.bak", 300 * KIB + 11, "sales"),
                SimFile(f"{SQLSERVER_DB}_hr.bak", 150 * KIB + 222, "hr"),
                SimFile(f"{SQLSERVER_DB}_inventory.bak", 420 * KIB + 999, "inventory"),
            ],
            ["sales", "hr", "inventory"],
        )
    )
    begin, end = _at(6, 4)
    b.append(
        SimBackup(
            SQLSERVER_FULL,
            SQLSERVER_INSTANCE,
            "sim-sqlserver-auto",
            "auto",
            "COMPLETED",
            "SQLServer",
            "2019_SE",
            begin,
            end,
            [SimFile(f"{SQLSERVER_FULL}_full.bak", 200 * KIB + 77)],
        )
    )
    begin, end = _at(30, 2)
    b.append(
        SimBackup(
            SQLSERVER_FAILED,
            SQLSERVER_INSTANCE,
            "sim-sqlserver-auto-failed",
            "auto",
            "FAILED",
            "SQLServer",
            "2019_SE",
            begin,
            end,
            [],
        )
    )

    begin, end = _at(4, 8)
    b.append(
        SimBackup(
            PG_FULL,
            PG_INSTANCE,
            "sim-postgresql-auto",
            "auto",
            "COMPLETED",
            "PostgreSQL",
            "15",
            begin,
            end,
            [
                SimFile(f"{PG_FULL}_base_2024-05-20_14-00-00.tar.gz", 700 * KIB + 45),
                SimFile(f"{PG_FULL}_wal_2024-05-20_14-00-00.tar.gz", 90 * KIB + 1),
            ],
        )
    )
    # Instances of their own with point-in-time chains (hundreds of tiny backups); the ones
    # above are unchanged by them.
    return b + chain_catalog() + shaped_catalog()


def shaped_catalog() -> list[SimBackup]:
    """Backups whose files are real backup formats: a MySQL full of two xbstream ``.qp``
    files (one multipart, so size-only without the content check) and a PostgreSQL full
    whose ``.tar.gz`` holds a ``backup_label``."""
    begin, end = _at(3, 5)
    stamp = "2024-05-20_15-00-00"
    mysql = SimBackup(
        SHAPED_MYSQL,
        SHAPED_MYSQL_INSTANCE,
        "sim-mysql-shaped-20240520",
        "manual",
        "COMPLETED",
        "MySQL",
        "8.0",
        begin,
        end,
        [
            SimFile(
                f"{SHAPED_MYSQL}_full_{stamp}_1.qp",
                6 * MIB + 4321,
                multipart_etag=True,
                shape="xbstream",
            ),
            SimFile(f"{SHAPED_MYSQL}_full_{stamp}_meta.qp", 3 * KIB + 17, shape="xbstream"),
        ],
    )
    pg = SimBackup(
        SHAPED_PG,
        SHAPED_PG_INSTANCE,
        "sim-pg-shaped-20240520",
        "manual",
        "COMPLETED",
        "PostgreSQL",
        "15",
        begin,
        end,
        [SimFile(f"{SHAPED_PG}_base_{stamp}.tar.gz", 300 * KIB + 9, shape="tar.gz")],
    )
    return [mysql, pg]


def demo_catalog() -> list[SimBackup]:
    """One big backup (about 240 MiB in five files) plus an older small one, for the demo."""
    begin, end = _at(2, 25)
    stamp = "2024-05-20_16-00-00"
    big = SimBackup(
        DEMO_FULL,
        DEMO_INSTANCE,
        "demo-mysql-auto-20240520",
        "auto",
        "COMPLETED",
        "MySQL",
        "8.0",
        begin,
        end,
        [
            SimFile(f"{DEMO_FULL}_full_{stamp}_1.qp", 128 * MIB + 4099, shape="xbstream"),
            SimFile(
                f"{DEMO_FULL}_full_{stamp}_2.qp",
                64 * MIB + 12345,
                multipart_etag=True,
                shape="xbstream",
            ),
            # Only what a MySQL full backup holds (a SQL Server .bak here made its restore
            # hints a mix of two engines); the third part is larger in its place.
            SimFile(f"{DEMO_FULL}_full_{stamp}_3.qp", 48 * MIB + 999, shape="xbstream"),
            SimFile(f"{DEMO_FULL}_full_{stamp}_meta.qp", 5 * KIB + 7, shape="xbstream"),
            SimFile(f"{DEMO_FULL}_full_{stamp}_index.qp", 1 * MIB + 1, shape="xbstream"),
        ],
    )
    begin, end = _at(26, 20)
    old = SimBackup(
        DEMO_OLD,
        DEMO_INSTANCE,
        "demo-mysql-auto-20240519",
        "auto",
        "COMPLETED",
        "MySQL",
        "8.0",
        begin,
        end,
        [SimFile(f"{DEMO_OLD}_full_2024-05-19_16-00-00_1.qp", 3 * MIB + 5)],
    )
    return [big, old]


@dataclass(slots=True)
class _Digests:
    md5: str
    sha256: str
    crc64: int


class ContentStore:
    """Which version of each file is current, its seed, digests and Last-Modified.

    Thread-safe enough for a test thread calling ``change_content`` while the server thread
    serves: versions are bumped under a lock, digests are cached per (file, version).
    """

    def __init__(self, backups: Iterable[SimBackup]) -> None:
        self.backups: dict[str, SimBackup] = {}
        for backup in backups:
            if backup.id in self.backups:
                raise ValueError(f"duplicate backup id {backup.id}")
            self.backups[backup.id] = backup
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, str], int] = {}
        self._modified: dict[tuple[str, str], float] = {}
        self._digests: dict[tuple[str, str, int], _Digests] = {}
        # Files whose stored bytes are damaged (one byte flipped at this offset): the
        # backup was damaged before it was uploaded, so its ETag and CRC-64 describe it.
        self._damaged: dict[tuple[str, str], int] = {}

    def lookup(self, backup_id: str, name: str) -> tuple[SimBackup, SimFile]:
        backup = self.backups[backup_id]
        return backup, backup.file(name)

    def version(self, backup_id: str, name: str) -> int:
        return self._versions.get((backup_id, name), 0)

    def seed(self, backup_id: str, name: str, version: int | None = None) -> bytes:
        v = self.version(backup_id, name) if version is None else version
        return f"{backup_id}\x00{name}\x00{v}".encode()

    def bump(self, backup_id: str, name: str, now: float) -> int:
        """Make new content (and ETag) current for that file; returns the new version."""
        self.lookup(backup_id, name)
        key = (backup_id, name)
        with self._lock:
            version = self._versions.get(key, 0) + 1
            self._versions[key] = version
            previous = self.last_modified(backup_id, name, version - 1)
            # Last-Modified has one-second resolution; make sure it visibly moves.
            self._modified[key] = max(float(math.floor(now)), math.floor(previous) + 1.0)
            return version

    def last_modified(self, backup_id: str, name: str, version: int | None = None) -> float:
        current = self.version(backup_id, name)
        if version is None or version == current:
            stamp = self._modified.get((backup_id, name))
            if stamp is not None:
                return stamp
        return self.backups[backup_id].end_time.timestamp() + 60.0 * (version or current)

    def damage(self, backup_id: str, name: str, offset: int) -> None:
        """Damage the stored bytes themselves: one byte flipped at ``offset``, in every
        answer and in the store's own checksums (a backup damaged before its upload)."""
        self.lookup(backup_id, name)
        with self._lock:
            self._damaged[(backup_id, name)] = offset
            for key in [k for k in self._digests if k[:2] == (backup_id, name)]:
                del self._digests[key]

    def iter_bytes(
        self, backup_id: str, name: str, version: int, offset: int, length: int
    ) -> Iterator[bytes | memoryview]:
        """The stored bytes ``[offset, offset + length)`` of that version, in pieces."""
        _, f = self.lookup(backup_id, name)
        seed = self.seed(backup_id, name, version)
        bad = self._damaged.get((backup_id, name))
        at = offset
        for piece in iter_shaped(f.shape, seed, f.size, offset, length):
            if bad is not None and at <= bad < at + len(piece):
                flipped = bytearray(piece)
                flipped[bad - at] ^= 0x01
                piece = bytes(flipped)
            yield piece
            at += len(piece)

    def read(self, backup_id: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        _, f = self.lookup(backup_id, name)
        n = f.size - offset if length is None else length
        v = self.version(backup_id, name)
        return b"".join(bytes(p) for p in self.iter_bytes(backup_id, name, v, offset, n))

    def digests(self, backup_id: str, name: str, version: int | None = None) -> _Digests:
        _, f = self.lookup(backup_id, name)
        v = self.version(backup_id, name) if version is None else version
        key = (backup_id, name, v)
        cached = self._digests.get(key)
        if cached is None:
            md5h = hashlib.md5(usedforsecurity=False)
            shah = hashlib.sha256()
            crc = crc64_xz(b"")
            for piece in self.iter_bytes(backup_id, name, v, 0, f.size):
                md5h.update(piece)
                shah.update(piece)
                crc = crc64_xz(piece, crc)
            cached = _Digests(md5h.hexdigest(), shah.hexdigest(), crc)
            self._digests[key] = cached
        return cached

    def has_digests(self, backup_id: str, name: str, version: int) -> bool:
        return (backup_id, name, version) in self._digests

    def etag(self, backup_id: str, name: str, version: int | None = None) -> str:
        """The quoted ETag OBS would show for that version of the file."""
        _, f = self.lookup(backup_id, name)
        v = self.version(backup_id, name) if version is None else version
        if f.multipart_etag:
            # Multipart uploads: MD5 of the part MD5s plus "-<parts>", not the content MD5.
            fake = hashlib.md5(self.seed(backup_id, name, v) + b"\x00parts", usedforsecurity=False)
            return f'"{fake.hexdigest()}-3"'
        return f'"{self.digests(backup_id, name, v).md5}"'
