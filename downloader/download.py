"""One ``download`` run around the engine: select, lock, fetch, write the manifest, report.

The CLI resolves the first listing (API or links file) and hands it here with a way to
fetch fresh listings; this module owns what happens to the output folder.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from downloader.disk import storage
from downloader.disk.digest import crc64_hex
from downloader.disk.holdings import folder_backups, held_chain
from downloader.disk.journal import Journal
from downloader.disk.lock import FolderLock
from downloader.disk.manifest import build_manifest, remove_manifest, write_manifest
from downloader.engine.core import Engine, EngineConfig
from downloader.engine.resolver import Fetch, LinkResolver
from downloader.errors import (
    ForeignBackupError,
    NothingSelectedError,
    StorageError,
    UsageError,
)
from downloader.models import BackupFile, FileListing
from downloader.progress import Reporter
from downloader.results import SERVER_CHECKSUM, FileOutcome, failed_exit_code
from downloader.wire.curlmulti import CurlLoop, CurlSettings

log = logging.getLogger("rds_backup.download")

# Assumed rate when judging whether links from a saved response can last the whole run.
PLAUSIBLE_RATE = 20 * 1024 * 1024
# The backup id of a --links-file run given no BACKUP_ID: a links file names no backup.
LINKS_FILE_ID = "links-file"


@dataclass(frozen=True, slots=True)
class Selection:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()

    def apply(self, files: Sequence[BackupFile]) -> list[BackupFile]:
        return [f for f in files if self._named(f) and self._of_database(f)]

    def _named(self, f: BackupFile) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(f.name, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(f.name, g) for g in self.exclude)

    def _of_database(self, f: BackupFile) -> bool:
        return not self.databases or f.database_name in self.databases

    def why_nothing(self, files: Sequence[BackupFile]) -> str:
        """Why :meth:`apply` kept none of ``files``: for ``--database``, the databases the
        backup has, and the one a name in another case means (names stay case-sensitive:
        SQL Server can hold ``Sales`` and ``sales`` both)."""
        if self.databases and not any(self._of_database(f) for f in files):
            asked = " ".join(f"--database {d}" for d in self.databases)
            have = sorted({f.database_name for f in files if f.database_name})
            if not have:
                return (
                    f"no file matches {asked}: this backup's files name no database "
                    "(only database-level backups, such as SQL Server's, do)"
                )
            folded = {h.casefold(): h for h in have}
            meant = [folded[d.casefold()] for d in self.databases if d.casefold() in folded]
            hint = (
                f"; did you mean {' '.join(f'--database {m}' for m in meant)}? "
                "(names are case-sensitive)"
                if meant
                else ""
            )
            return f"no file matches {asked}: the backup's databases are {', '.join(have)}{hint}"
        filters = [f"--include {g}" for g in self.include]
        filters += [f"--exclude {g}" for g in self.exclude]
        filters += [f"--database {d}" for d in self.databases]
        return (
            f"no file matches {' '.join(filters) or 'the selection'} "
            f"(of the backup's {len(files)} files; `rds-backup files` lists them)"
        )


@dataclass(frozen=True, slots=True)
class TransportConfig:
    connect_timeout: float = 15.0
    stall_timeout: float = 30.0
    verify: bool = True  # False only with --insecure-links
    ca_bundle: str | None = None  # PEM file of CAs to trust; None: the system's store
    expiry_margin: float = 60.0


@dataclass(slots=True)
class RunReport:
    backup_id: str
    outcomes: list[FileOutcome]
    seconds: float
    resolutions: int
    refusals: int
    retries: int
    restarts: int
    bytes_fetched: int
    manifest: str | None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def size_only(self) -> int:
        """Files that verified, but with no checksum the object store computed."""
        return sum(1 for o in self.outcomes if o.ok and o.integrity != SERVER_CHECKSUM)

    @property
    def exit_code(self) -> int:
        return failed_exit_code(self.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "ok": not self.failed,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "bytes_fetched": self.bytes_fetched,
            "retries": self.retries,
            "restarts": self.restarts,
            "re_resolutions": self.resolutions,
            "links_refused": self.refusals,
            "manifest": self.manifest,
            "warnings": self.warnings,
            "size_only": self.size_only,
            "files": [
                {
                    "name": o.name,
                    "database_name": o.database_name,
                    "result": "skipped" if o.skipped else ("ok" if o.ok else "failed"),
                    "size": o.size,
                    "crc64": None if o.crc64 is None else crc64_hex(o.crc64),
                    "sha256": o.sha256,
                    "md5": o.md5,
                    "etag": o.etag,
                    "integrity": o.integrity,
                    "content": o.content.to_json() if o.content is not None else None,
                    "seconds": round(o.seconds, 3),
                    "bytes_fetched": o.fetched,
                    "detail": o.detail,
                }
                for o in self.outcomes
            ],
        }


def make_session(
    transport: TransportConfig, connections: int, *, limit_rate: int | None = None
) -> CurlLoop:
    """The object store's connections (an async context manager): one libcurl multi, no
    API credentials, no compression, at most ``connections`` at once, and at most
    ``limit_rate`` bytes a second across them. Runs at once may share it (a chain's
    backups, a fleet's instances), and so both budgets: a transfer waiting for a free
    connection is not timed, only the connecting itself and the silences after it."""
    return CurlLoop(
        CurlSettings(
            connect_timeout=transport.connect_timeout,
            stall_timeout=transport.stall_timeout,
            verify=transport.verify,
            ca_bundle=transport.ca_bundle,
        ),
        connections,
        limit_rate=limit_rate,
    )


async def run_download(
    config: EngineConfig,
    listing: FileListing,
    *,
    fetch: Fetch | None,
    selection: Selection,
    transport: TransportConfig,
    reporter: Reporter,
    wait_lock: bool = False,
    engine_name: str | None = None,
    session: CurlLoop | None = None,
) -> RunReport:
    """Fetch ``listing``'s selected files into ``config.out_dir`` under its lock.

    ``session``, when given, is shared with other runs (a chain's backups, a fleet's
    instances): its limit is then the one connection budget of them all, and it stays
    open. Otherwise the run opens its own.
    """
    started = time.monotonic()
    files = selection.apply(listing.files)
    if not listing.files:
        raise NothingSelectedError(f"backup {config.backup_id} lists no files")
    if not files:
        raise NothingSelectedError(selection.why_nothing(listing.files))
    layout = storage.Layout(config.out_dir)
    if held_chain(layout):  # a chain's folder: refused before anything is added to it
        _refuse_another_backup(layout, config.backup_id)
    # Names that cannot all be placed (``a`` and ``a/b``, too long) fail now, not after.
    storage.check_names(layout.root, [f.name for f in files])
    for f in files:
        # Refuses hostile names, and links on the way to a file, before anything is written.
        layout.checked_final(f.name)
    layout.prepare()
    lock = FolderLock(layout.lock, str(config.out_dir))
    await lock.acquire(wait=wait_lock)
    try:
        # Under the lock, so no other run is adding another backup's records meanwhile.
        _refuse_another_backup(layout, config.backup_id)
        resolver = LinkResolver(listing, fetch, margin=transport.expiry_margin)
        warnings = list(listing.warnings)
        if fetch is None:
            warnings += _links_file_warnings(files, resolver)
        for w in warnings:
            reporter.event("warning", w)
        journal = Journal(layout)
        total = sum(f.size_kb * 1024 for f in files)
        reporter.run_started(
            backup_id=config.backup_id,
            files=[(f.name, f.size_kb * 1024) for f in files],
            total_bytes=total,
        )
        async with contextlib.AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(
                    make_session(transport, config.connections, limit_rate=config.limit_rate)
                )
            engine = Engine(
                config,
                files,
                resolver=resolver,
                session=session,
                reporter=reporter,
                journal=journal,
            )
            outcomes = await engine.run()
        manifest_path = None
        if all(o.ok for o in outcomes):
            selected = {f.name for f in files}
            records = [
                r
                for r in journal.completed()
                if r.backup_id == config.backup_id
                and (r.name in selected or _in_place(layout, r.name, r.size))
            ]
            manifest = build_manifest(
                backup_id=config.backup_id,
                bucket=listing.bucket,
                engine=engine_name,
                records=records,
            )
            manifest_path = str(write_manifest(layout, manifest))
        else:
            remove_manifest(layout)
            names = ", ".join(o.name for o in outcomes if not o.ok)
            first = ""
            if any(isinstance(o.error, StorageError) for o in outcomes):
                first = "fix the output folder's disk (see above), then "
            log.error(
                "not complete: %s; %srun the same command again to fetch only these", names, first
            )
        return RunReport(
            backup_id=config.backup_id,
            outcomes=outcomes,
            seconds=time.monotonic() - started,
            resolutions=resolver.resolutions,
            refusals=resolver.refusals,
            retries=engine.stats.retries,
            restarts=engine.stats.restarts,
            bytes_fetched=engine.stats.bytes_fetched,
            manifest=manifest_path,
            warnings=warnings,
        )
    finally:
        lock.release()


def _refuse_another_backup(layout: storage.Layout, backup_id: str) -> None:
    """A folder belongs to one backup: another's files, records and manifest would mix
    (its manifest replaced, its files orphaned), so its download is refused before anything
    is written."""
    others = sorted(folder_backups(layout) - {backup_id})
    if not others:
        return
    held = others[0]

    def said(bid: str) -> str:
        if bid == LINKS_FILE_ID:
            return "a --links-file download given no BACKUP_ID"
        if bid.startswith("chain:"):
            return f"a point-in-time chain ({bid[6:160]}, download --to-time)"
        return f"backup {bid[:100]}"

    if backup_id == LINKS_FILE_ID:
        wanted = f"the links file's backup into a new folder, or give {held[:100]} as BACKUP_ID"
        wanted += " if the links file is of that backup"
    else:
        wanted = f"backup {backup_id} into a new folder"
    raise ForeignBackupError(
        f"{layout.root} already holds {said(held)}: a folder holds one backup; download {wanted}",
        folder=str(layout.root),
        held=held,
        wanted=backup_id,
    )


def _in_place(layout: storage.Layout, name: str, size: int | None) -> bool:
    """A file of this backup finished by an earlier run (say, for another --database) and
    still in place: the manifest keeps listing it."""
    try:
        path = layout.final(name)
    except UsageError:
        return False
    return path.is_file() and path.stat().st_size == size


def _links_file_warnings(files: Sequence[BackupFile], resolver: LinkResolver) -> list[str]:
    total = sum(f.size_kb * 1024 for f in files)
    needed = total / PLAUSIBLE_RATE
    now = resolver.server_now()
    out = []
    for f in files:
        if f.link_expired_time is None:
            continue
        left = f.link_expired_time.timestamp() - now
        if left < needed:
            when = "has expired" if left <= 0 else f"expires in {left:.0f} s"
            out.append(
                f"{f.name}: link {when}, before the download can plausibly finish; links from "
                "--links-file cannot be renewed"
            )
    return out
