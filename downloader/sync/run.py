"""One ``sync`` run: the mirror of a fleet's newest backups under one root.

For each instance (several at once, bounded), its newest COMPLETED backup of each chosen
type goes to ``ROOT/<instance_id>/<backup_id>/`` through :func:`~downloader.download.
run_download`, exactly as ``download`` writes a folder. A folder already complete is skipped
without asking the API for its links. Then, only if all of that instance's backups are in
place, retention removes its complete folders beyond the newest N.

All instances share one API client (so one budget of API calls per minute) and one set of
object-store connections (a libcurl multi) limited to ``--max-connections``: one
connection budget for the fleet, split evenly between the instances running at once
(``--limit-rate`` too), so no run waits for a connection another holds. An error of one
instance is recorded in its result and never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from downloader.api.client import RdsClient
from downloader.disk import storage
from downloader.disk.lock import FolderLock
from downloader.download import Selection, TransportConfig, make_session, run_download
from downloader.engine.core import EngineConfig
from downloader.errors import RdsBackupError, UntrustedFolderError
from downloader.models import Backup, FileListing
from downloader.progress import make_reporter
from downloader.sync.folders import (
    adopt_complete,
    backup_folder,
    complete_backup,
    remove_backup_folder,
    scan_instance,
)
from downloader.sync.ledger import Ledger
from downloader.sync.metrics import InstanceMetrics, RunMetrics, render, write_sync_metrics
from downloader.sync.plan import (
    Folder,
    Shard,
    folder_name_problem,
    in_shard,
    instance_active,
    pick_targets,
    retention,
    skip_reason,
)
from downloader.sync.push import push_metrics
from downloader.sync.report import BackupResult, InstanceResult, SyncReport
from downloader.wire.curlmulti import CurlLoop

__all__ = ["SyncConfig", "run_sync"]

log = logging.getLogger("rds_backup.sync")

# Read replicas have no backups of their own (RDS backs up their primary).
NO_BACKUPS_TYPES = frozenset({"replica"})


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """What ``rds-backup sync`` was asked to do. ``engine`` is the template of each
    backup's download (its folder, backup id, connection and rate shares are filled in)."""

    root: Path
    engine: EngineConfig
    transport: TransportConfig
    instance_ids: tuple[str, ...] = ()  # empty: every instance of the project
    backup_types: tuple[str, ...] = ("auto",)
    keep: int | None = None
    shard: Shard | None = None
    dry_run: bool = False
    metrics_file: Path | None = None
    metrics_push: str | None = None  # a Pushgateway's base URL
    parallel: int = 4  # instances at once
    wait_lock: bool = False
    progress: Literal["log", "quiet"] = "log"
    progress_interval: float = 30.0

    @property
    def state(self) -> Path:
        return self.root / storage.STATE_DIR

    @property
    def lock_path(self) -> Path:
        # One lock per shard: shards of one fleet may share ROOT (a shared volume), and
        # never share an instance; two runs of the same shard never overlap. A shard's run
        # also holds the root's lock shared, so no unsharded run overlaps it (_lock_root).
        if self.shard is None:
            return self.state / "lock"
        return self.state / f"shard-{self.shard.index}-of-{self.shard.count}.lock"


async def run_sync(config: SyncConfig, client: RdsClient) -> SyncReport:
    """Run the sync under the root's lock (LockHeldError, exit 5, when another sync of the
    same shard holds it) and write the metrics file at its end, whatever the outcome. A dry
    run takes no lock and writes nothing, metrics included."""
    started, wall_start = time.monotonic(), time.time()
    report = SyncReport(
        root=str(config.root),
        shard=None if config.shard is None else str(config.shard),
        dry_run=config.dry_run,
    )
    if config.dry_run:
        await _Syncer(config, client, report, None).run()
        report.seconds = time.monotonic() - started
        return report
    try:
        storage.Layout(config.root).prepare(state_only=True)
    except RdsBackupError as exc:
        report.error = exc
        _write_metrics(config, report, wall_start)
        raise
    # Held by another run of this root (and shard): that run writes the metrics file.
    locks = await _lock_root(config)
    try:
        async with make_session(
            config.transport, config.engine.connections, limit_rate=config.engine.limit_rate
        ) as session:
            await _Syncer(config, client, report, session).run()
    except RdsBackupError as exc:
        report.error = exc
        raise
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    finally:
        report.seconds = time.monotonic() - started
        try:
            _write_metrics(config, report, wall_start)
        finally:
            for lock in reversed(locks):
                lock.release()
    return report


async def _lock_root(config: SyncConfig) -> list[FolderLock]:
    """The run's locks: the root's own (``download``'s too), exclusive without ``--shard``;
    with it, the root's shared (no unsharded run overlaps any shard) and the shard's
    exclusive. LockHeldError (exit 5) when another run holds what this one needs."""
    root_lock = FolderLock(config.state / "lock", str(config.root))
    await root_lock.acquire(wait=config.wait_lock, shared=config.shard is not None)
    if config.shard is None:
        return [root_lock]
    try:
        shard_lock = FolderLock(config.lock_path, str(config.root))
        await shard_lock.acquire(wait=config.wait_lock)
    except BaseException:
        root_lock.release()
        raise
    return [root_lock, shard_lock]


def _write_metrics(config: SyncConfig, report: SyncReport, wall_start: float) -> None:
    if config.metrics_file is None and config.metrics_push is None:
        return
    now = time.time()
    instances = [
        InstanceMetrics(
            instance_id=i.instance_id,
            success=i.ok,
            # A skipped instance mirrored nothing: its last success stays the previous one.
            last_success=now if i.ok and i.skipped is None else None,
            latest_backup=_timestamp(i.latest_backup()),
            bytes_downloaded=i.bytes_fetched,
            files_failed=i.files_failed,
            skipped=i.skipped is not None,
            status=i.status,
        )
        for i in report.instances
    ]
    run = RunMetrics(
        finished_at=now,
        success=report.ok,
        duration=now - wall_start,
        bytes_downloaded=report.bytes_fetched,
    )
    text = render(run, instances)
    if config.metrics_file is not None:
        try:
            # No instance known (the run failed before it had them): all of the last file's
            # instances failed with it.
            unlisted = not report.instances and not report.ok
            text = write_sync_metrics(config.metrics_file, run, instances, keep_unlisted=unlisted)
        except (OSError, RdsBackupError) as exc:
            # The run's own outcome stands; a metrics file left stale shows as a stale run.
            log.error("cannot write the metrics file %s: %s", config.metrics_file, exc)
    if config.metrics_push is not None:
        shard = None if config.shard is None else config.shard.index
        push_metrics(config.metrics_push, text, shard=shard)


def _timestamp(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


class _Syncer:
    """The run's instances, each in its own task (at most ``parallel`` at once)."""

    def __init__(
        self,
        config: SyncConfig,
        client: RdsClient,
        report: SyncReport,
        session: CurlLoop | None,
    ) -> None:
        self.cfg = config
        self.client = client
        self.report = report
        self.session = session
        self.statuses: dict[str, str] = {}  # as the instances list gives them
        # Each instance running at once gets an even share of the fleet's connections; the
        # rate is the whole run's, one bucket in the shared session that whatever instances
        # run at a moment draw on.
        share = max(1, config.engine.connections // config.parallel)
        self.engine = replace(
            config.engine, connections=share, per_file=min(config.engine.per_file, share)
        )

    async def run(self) -> None:
        ids = await self._instance_ids()
        self.report.instances = [InstanceResult(i, status=self.statuses.get(i)) for i in ids]
        gate = asyncio.Semaphore(self.cfg.parallel)

        async def one(result: InstanceResult) -> None:
            try:
                async with gate:
                    await self._instance(result)
            except asyncio.CancelledError:
                result.error = result.error or "interrupted"
                raise

        async with asyncio.TaskGroup() as tg:
            for result in self.report.instances:
                tg.create_task(one(result))

    async def _instance_ids(self) -> list[str]:
        if self.cfg.instance_ids:
            ids = list(dict.fromkeys(self.cfg.instance_ids))
        else:
            listed = await self.client.list_instances()
            self.statuses = {inst.id: inst.status for inst in listed}
            ids = []
            for inst in listed:
                if inst.type.lower() in NO_BACKUPS_TYPES:
                    log.info("instance %s is a read replica (no backups of its own)", inst.id)
                    continue
                ids.append(inst.id)
        mine = [i for i in ids if in_shard(i, self.cfg.shard)]
        if self.cfg.shard is not None:
            log.info("shard %s: %d of %d instance(s)", self.cfg.shard, len(mine), len(ids))
        if not mine:
            log.warning("no instance to mirror")
        return mine

    async def _instance(self, result: InstanceResult) -> None:
        instance_id = result.instance_id
        problem = folder_name_problem(instance_id)
        if problem is not None:
            result.error = f"instance id {instance_id!r} cannot name a folder: {problem}"
            return
        try:
            listed = await self.client.list_backups(instance_id)
            # Only this instance's: its folder must never hold another instance's backup.
            listed = [b for b in listed if b.instance_id in ("", instance_id)]
        except RdsBackupError as exc:
            if not instance_active(result.status):
                # An instance being built (or frozen, shut down ...) may have no backups to
                # list: that is its state, not a failure of this run.
                log.debug("instance %s (%s): %s", instance_id, result.status, exc)
                self._skip(result, f"status {result.status}")
                return
            result.fail(exc)
            log.error("instance %s: %s", instance_id, exc)
            return
        targets = pick_targets(listed, self.cfg.backup_types)
        if not targets:
            why = skip_reason(listed, result.status)
            if why is not None:
                self._skip(result, why)
                return
            kinds = "/".join(self.cfg.backup_types)
            result.error = f"no COMPLETED {kinds} backup with an end time"
            log.error("instance %s: %s", instance_id, result.error)
            return
        ledger = Ledger(self.cfg.state, instance_id)
        ledger.load()
        for b in listed:
            if b.end_time is not None:
                ledger.note_time(b.id, b.end_time)  # the API's word wins over the record
        for backup in targets:
            done = await self._backup(instance_id, backup, ledger)
            result.backups.append(done)
            result.untrusted = result.untrusted or done.untrusted
        if result.untrusted:
            return  # its folders are not to be looked into, nor removed from
        try:
            adopt_complete(self.cfg.root, instance_id, ledger)
            await self._retention(result, targets, ledger)
            if not self.cfg.dry_run:
                folders = scan_instance(self.cfg.root, instance_id, {})
                ledger.save({f.name for f in folders if f.real_dir})
        except (RdsBackupError, OSError) as exc:
            result.warnings.append(f"retention: {exc}")
            log.error("instance %s: retention: %s", instance_id, exc)

    @staticmethod
    def _skip(result: InstanceResult, why: str) -> None:
        result.skipped = why
        log.info("instance %s: skipped (%s)", result.instance_id, why)

    def _dir(self, instance_id: str) -> Path:
        return self.cfg.root / instance_id

    async def _backup(self, instance_id: str, backup: Backup, ledger: Ledger) -> BackupResult:
        result = BackupResult(
            backup.id, backup.type, backup.end_time, "failed", size_kb=backup.size_kb
        )
        problem = folder_name_problem(backup.id)
        if problem is not None:
            result.error = f"backup id {backup.id!r} cannot name a folder: {problem}"
            return result
        try:
            # Walked from ROOT, never through a link: download would write where it points.
            folder = backup_folder(
                self.cfg.root, instance_id, backup.id, create=not self.cfg.dry_run
            )
        except UntrustedFolderError as exc:
            result.error, result.untrusted = str(exc), True
            log.error("instance %s: backup %s: %s", instance_id, backup.id, result.error)
            return result
        except OSError as exc:
            result.error = f"{self._dir(instance_id) / backup.id}: {exc.strerror or exc}"
            log.error("instance %s: backup %s: %s", instance_id, backup.id, result.error)
            return result
        files = complete_backup(folder, backup.id)
        if files is not None:
            log.info("instance %s: backup %s is complete already", instance_id, backup.id)
            result.outcome = "skipped"
            ledger.note_finished(backup.id, files)
            return result
        if self.cfg.dry_run:
            result.outcome = "would-fetch"
            return result
        log.info(
            "instance %s: fetching backup %s (%s, ended %s)",
            instance_id,
            backup.id,
            backup.type,
            backup.end_time,
        )
        try:
            await self._download(instance_id, backup, folder, result)
        except RdsBackupError as exc:
            result.outcome, result.error = "failed", str(exc)
            result.untrusted = isinstance(exc, UntrustedFolderError)
        except OSError as exc:
            result.outcome, result.error = "failed", f"{folder}: {exc.strerror or exc}"
        if result.error:
            log.error("instance %s: backup %s: %s", instance_id, backup.id, result.error)
        elif result.outcome in ("fetched", "skipped"):
            files = complete_backup(folder, backup.id)
            if files is None or not ledger.note_finished(backup.id, files):
                log.warning(
                    "instance %s: backup %s is in place but could not be recorded as "
                    "finished; retention keeps its folder",
                    instance_id,
                    backup.id,
                )
        return result

    async def _download(
        self, instance_id: str, backup: Backup, folder: Path, result: BackupResult
    ) -> None:
        def fetch() -> Awaitable[FileListing]:
            return self.client.show_backup_files(backup.id, instance_id=instance_id)

        listing = await fetch()
        reporter = make_reporter(mode=self.cfg.progress, interval=self.cfg.progress_interval)
        try:
            run = await run_download(
                replace(self.engine, out_dir=folder, backup_id=backup.id),
                listing,
                fetch=fetch,
                selection=Selection(),
                transport=self.cfg.transport,
                reporter=reporter,
                engine_name=backup.engine,
                session=self.session,
            )
        finally:
            reporter.close()
        result.bytes_fetched = run.bytes_fetched
        result.files = len(run.outcomes)
        failed = run.failed
        result.files_failed = len(failed)
        if failed:
            names = ", ".join(o.name for o in failed[:5]) + (", ..." if len(failed) > 5 else "")
            result.outcome, result.error = "failed", f"{len(failed)} file(s) failed: {names}"
        elif all(o.skipped for o in run.outcomes):
            result.outcome = "skipped"  # in place after all (checked again, nothing fetched)
        else:
            result.outcome = "fetched"

    async def _retention(
        self, result: InstanceResult, targets: list[Backup], ledger: Ledger
    ) -> None:
        instance_id = result.instance_id
        folders = scan_instance(self.cfg.root, instance_id, ledger.finished)
        if self.cfg.dry_run:
            # As the real run would see them: what it would fetch is complete by then.
            coming = {b.backup_id for b in result.of("would-fetch")}
            folders = [f for f in folders if f.name not in coming]
            folders += [Folder(b.id, True, True, b.end_time) for b in targets if b.id in coming]
        protected = {b.id for b in targets} | {b.backup_id for b in result.of("failed")}
        doomed = retention(
            folders, keep=self.cfg.keep, protected=protected, instance_failed=not result.ok
        )
        for name in doomed:
            if self.cfg.dry_run:
                result.removed.append(name)
                continue
            try:
                remove_backup_folder(self.cfg.root, instance_id, name, ledger.finished[name])
            except (RdsBackupError, OSError) as exc:
                result.warnings.append(f"cannot remove {name}: {exc}")
                log.error("instance %s: cannot remove %s: %s", result.instance_id, name, exc)
                continue
            ledger.forget(name)
            result.removed.append(name)
            log.info(
                "instance %s: removed %s (keeping the newest %s)",
                result.instance_id,
                name,
                self.cfg.keep,
            )
