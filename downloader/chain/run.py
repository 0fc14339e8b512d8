"""One point-in-time download: every backup of a chain, each into its own folder, in one run.

The output folder holds ``NN-type-backup_id/`` per backup (each exactly what ``download``
writes: files, manifest, its own ``.rds-backup/`` journal), the chain's manifest
(``rds-backup-manifest.json``, written last, only when every backup is complete), and one
state folder ``.rds-backup/`` holding the run's lock and a note of which chain the folder is
for (so that neither a plain download nor another chain mixes in before the manifest exists).

The backups share one set of object-store connections (a libcurl multi), whose limit is the
chain's one connection budget. Several backups run at once (``at_once``): a chain is mostly
many small incremental backups, where each backup's fixed costs (its API call for links,
its lock, journal and manifest fsyncs) would otherwise run one after another while the
connection budget idles;
with ``--limit-rate`` they run one at a time, so that the rate caps the whole run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from downloader.chain.manifest import build_chain_manifest
from downloader.chain.select import Chain, ChainLink, utc_text
from downloader.disk import storage
from downloader.disk.holdings import (
    CHAIN_PREFIX,
    FOLDER_RE,
    MARKER_NAME,
    folder_backups,
    held_chain,
)
from downloader.disk.lock import FolderLock
from downloader.disk.manifest import load_manifest, remove_manifest, write_manifest
from downloader.download import (
    RunReport,
    Selection,
    TransportConfig,
    make_session,
    run_download,
)
from downloader.engine.context import EngineConfig
from downloader.errors import (
    ForeignBackupError,
    RdsBackupError,
    StorageError,
    UntrustedFolderError,
    UsageError,
)
from downloader.models import BackupFile, FileListing
from downloader.progress import Reporter
from downloader.results import failed_exit_code
from downloader.text.fmt import format_size

__all__ = ["ChainReport", "LinkRun", "held_chain", "run_chain"]

log = logging.getLogger("rds_backup.chain")

_EXPIRED = datetime(1970, 1, 1, tzinfo=UTC)  # a placeholder link's expiry: renew before use
DEFAULT_AT_ONCE = 4

ListingFor = Callable[[str], Awaitable[FileListing]]


@dataclass(slots=True)
class LinkRun:
    """One backup of the chain and its run's report."""

    link: ChainLink
    report: RunReport


@dataclass(slots=True)
class ChainReport:
    chain: Chain
    out_dir: Path
    runs: list[LinkRun]
    seconds: float
    manifest: str | None

    @property
    def reports(self) -> list[RunReport]:
        return [r.report for r in self.runs]

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.reports)

    @property
    def bytes_fetched(self) -> int:
        return sum(r.bytes_fetched for r in self.reports)

    @property
    def exit_code(self) -> int:
        """As one download's, over the failed files of every backup."""
        return failed_exit_code([o for r in self.reports for o in r.failed])

    def to_json(self) -> dict[str, Any]:
        c = self.chain
        return {
            "chain": c.id,
            "instance_id": c.instance_id,
            "to_time": c.to_time.isoformat(),
            "engine": c.engine,
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "bytes_fetched": self.bytes_fetched,
            "manifest": self.manifest,
            "backups": [
                {
                    "position": r.link.position,
                    "folder": r.link.folder,
                    "backup_id": r.link.backup.id,
                    "type": r.link.backup.type,
                    "begin_time": _iso(r.link.backup.begin_time),
                    "end_time": _iso(r.link.backup.end_time),
                    **{k: v for k, v in r.report.to_json().items() if k != "backup_id"},
                }
                for r in self.runs
            ],
        }


def _iso(when: Any) -> str | None:
    return when.isoformat() if when is not None else None


class _InFolder:
    """The shared reporter, with each file named by its folder (``02-incremental-x/name``):
    two backups of a chain may hold files of the same name. The chain is one run for the
    reporter (its start, rate and ETA): a later backup's start adds its files, and says so."""

    def __init__(self, inner: Reporter, folder: str, started: list[bool]) -> None:
        self._inner = inner
        self._prefix = folder + "/"
        self._started = started  # shared by the chain's backups: has the run started?

    def run_started(
        self, *, backup_id: str, files: Sequence[tuple[str, int | None]], total_bytes: int | None
    ) -> None:
        named = [(self._prefix + n, s) for n, s in files]
        if not self._started[0]:
            self._started[0] = True
            self._inner.run_started(backup_id=backup_id, files=named, total_bytes=total_bytes)
            return
        for name, size in named:
            if size is not None:
                self._inner.file_size_known(name, size)
        self._inner.event(
            "info", f"backup {backup_id}: {len(files)} file(s), {format_size(total_bytes)}"
        )

    def file_started(self, name: str, size: int | None, already: int = 0) -> None:
        self._inner.file_started(self._prefix + name, size, already)

    def file_size_known(self, name: str, size: int) -> None:
        self._inner.file_size_known(self._prefix + name, size)

    def advance(self, name: str, nbytes: int) -> None:
        self._inner.advance(self._prefix + name, nbytes)

    def file_finished(self, name: str, *, ok: bool, detail: str | None = None) -> None:
        self._inner.file_finished(self._prefix + name, ok=ok, detail=detail)

    def file_skipped(self, name: str, reason: str, size: int | None = None) -> None:
        self._inner.file_skipped(self._prefix + name, reason, size)

    def event(self, kind: str, message: str, **fields: object) -> None:
        self._inner.event(kind, f"{self._prefix}{message}", **fields)

    def tick(self, now: float | None = None) -> None:
        self._inner.tick(now)

    def close(self) -> None:
        return None  # the shared reporter is closed once, by its owner


async def run_chain(
    chain: Chain,
    config: EngineConfig,
    *,
    listing_for: ListingFor,
    transport: TransportConfig,
    reporter: Reporter,
    wait_lock: bool = False,
    at_once: int = DEFAULT_AT_ONCE,
) -> ChainReport:
    """Download every backup of ``chain`` into ``config.out_dir``: one folder per backup,
    then the chain's manifest. ``config`` is every backup's engine configuration (its
    ``out_dir`` and ``backup_id`` are each backup's own); ``listing_for(backup_id)`` gives a
    backup's files and fresh links (called again when links expire)."""
    started = time.monotonic()
    root = config.out_dir
    layout = storage.Layout(root)
    # Its one state folder holds the lock and the marker; each backup's folder has its own.
    layout.prepare(state_only=True)
    lock = FolderLock(layout.lock, str(root))
    await lock.acquire(wait=wait_lock)
    try:
        _refuse_others(layout, chain)
        _write_marker(layout, chain)
        for link in chain.links:
            _backup_folder(root / link.folder)
        at_once = 1 if config.limit_rate else max(1, min(at_once, len(chain.links)))
        runs = await _run_links(chain, config, listing_for, transport, reporter, at_once)
        report = ChainReport(chain, root, runs, 0.0, None)
        if report.exit_code == 0:
            subs = [
                (r.link, load_manifest(storage.Layout(root / r.link.folder).manifest)) for r in runs
            ]
            manifest = build_chain_manifest(chain, subs)
            report.manifest = str(write_manifest(layout, manifest))
        else:
            remove_manifest(layout)
        report.seconds = time.monotonic() - started
        return report
    finally:
        lock.release()


async def _run_links(
    chain: Chain,
    config: EngineConfig,
    listing_for: ListingFor,
    transport: TransportConfig,
    reporter: Reporter,
    at_once: int,
) -> list[LinkRun]:
    gate = asyncio.Semaphore(at_once)  # waiters are woken in order: backups start in order
    started = [False]

    async def one(link: ChainLink) -> LinkRun:
        async with gate:
            bid = link.backup.id

            async def fetch() -> FileListing:
                return await listing_for(bid)

            cfg = dataclasses.replace(config, out_dir=config.out_dir / link.folder, backup_id=bid)
            listing = saved_listing(storage.Layout(cfg.out_dir), bid) or await fetch()
            report = await run_download(
                cfg,
                listing,
                fetch=fetch,
                selection=Selection(),
                transport=transport,
                reporter=_InFolder(reporter, link.folder, started),
                engine_name=link.backup.engine,
                session=session,
            )
            return LinkRun(link, report)

    # One multi for every backup: its limit is the chain's one connection budget.
    async with make_session(transport, config.connections, limit_rate=config.limit_rate) as session:
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(link)) for link in chain.links]
        except BaseExceptionGroup as group:
            # The first of our errors (one backup's API or folder error ended the run),
            # as a plain exception for the CLI's one catch point.
            ours = [e for e in group.exceptions if isinstance(e, RdsBackupError)]
            if ours:
                raise ours[0] from None
            raise
    return [t.result() for t in tasks]


def saved_listing(layout: storage.Layout, backup_id: str) -> FileListing | None:
    """A complete backup folder's files, from its manifest, so that a rerun of a long chain
    checks them on disk (unread while their stat is unchanged) without an API call each.
    Their links are placeholders, already expired: a file that must be fetched again makes
    the resolver ask the API for real ones first. None when the folder is not complete."""
    try:
        manifest = load_manifest(layout.manifest)
    except UsageError:
        return None
    if manifest.get("backup_id") != backup_id:
        return None
    files = []
    for entry in manifest["files"]:
        if not isinstance(entry, dict):
            return None
        name, size_kb, db = entry.get("name"), entry.get("size_kb"), entry.get("database_name")
        if not isinstance(name, str) or not isinstance(size_kb, int) or size_kb < 0:
            return None
        files.append(BackupFile(name, size_kb, "", _EXPIRED, db if isinstance(db, str) else None))
    bucket = manifest.get("bucket")
    return FileListing(tuple(files), bucket if isinstance(bucket, str) else "") if files else None


def _backup_folder(path: Path) -> None:
    """A backup's folder: made here, or a real folder already; never a planted link, which
    the download would follow out of the output folder."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror}", errno=exc.errno) from exc
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedFolderError(str(path), "is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise UntrustedFolderError(str(path), "is not a folder")


def _write_marker(layout: storage.Layout, chain: Chain) -> None:
    if held_chain(layout) == {chain.id}:
        return
    note = {
        "chain": chain.id,
        "instance_id": chain.instance_id,
        "to_time": utc_text(chain.to_time),
        "folders": [link.folder for link in chain.links],
    }
    storage.atomic_write(layout.state / MARKER_NAME, (json.dumps(note, indent=2) + "\n").encode())


def _refuse_others(layout: storage.Layout, chain: Chain) -> None:
    """A folder holds one backup or one chain: a plain backup's files, another chain's
    folders, or a folder of a backup this chain no longer includes would mix with it."""
    others = sorted(folder_backups(layout) - {chain.id})
    wanted = f"download the chain to {chain.to_time.isoformat()} into a new folder"
    if others:
        held = others[0]
        what = f"the chain {held[len(CHAIN_PREFIX) :]}" if held.startswith(CHAIN_PREFIX) else held
        raise ForeignBackupError(
            f"{layout.root} already holds {what[:160]}: a folder holds one backup or one "
            f"chain; {wanted}",
            folder=str(layout.root),
            held=held,
            wanted=chain.id,
        )
    planned = {link.folder for link in chain.links}
    try:
        names = sorted(os.listdir(layout.root))
    except OSError as exc:
        raise StorageError(f"cannot read {layout.root}: {exc.strerror}", errno=exc.errno) from exc
    for name in names:
        if FOLDER_RE.match(name) and name not in planned:
            raise UsageError(
                f"{layout.root} holds {name}, which is not part of the chain to "
                f"{chain.to_time.isoformat()} (the backups changed since it was fetched?); "
                f"{wanted}"
            )
