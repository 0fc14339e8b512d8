"""What a ``sync`` run did, per instance: fetched, skipped, removed, failed; as JSON for
``--json`` and as the lines of the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from downloader.errors import (
    ApiAuthError,
    CredentialsError,
    RdsBackupError,
    UntrustedFolderError,
)
from downloader.sync.plan import run_exit_code
from downloader.text.fmt import format_duration, format_size, printable

__all__ = ["BackupResult", "InstanceResult", "SyncReport"]


@dataclass(slots=True)
class BackupResult:
    """One backup of an instance in this run. ``outcome``: fetched, skipped, failed (or,
    in a dry run, would-fetch)."""

    backup_id: str
    type: str
    end_time: datetime | None
    outcome: str
    bytes_fetched: int = 0
    size_kb: int = 0  # as the API lists it
    files: int = 0
    files_failed: int = 0
    error: str | None = None
    untrusted: bool = False  # its folder was refused (a planted link)

    def to_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "type": self.type,
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "bytes_fetched": self.bytes_fetched,
            "size_kb": self.size_kb,
            "files": self.files,
            "files_failed": self.files_failed,
            "error": self.error,
        }


@dataclass(slots=True)
class InstanceResult:
    """One instance in this run. It failed when ``error`` is set (nothing could be
    mirrored: unknown instance, no COMPLETED backup, the API refused) or a backup failed.
    It was skipped, not failed, when ``skipped`` says why: it has no backup yet, or it is
    not ACTIVE (``status``, as the instances list gives it) and has none to mirror."""

    instance_id: str
    backups: list[BackupResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    error: str | None = None
    auth_refused: bool = False
    untrusted: bool = False  # a folder of its own was refused (a planted link)
    warnings: list[str] = field(default_factory=list)
    status: str | None = None
    skipped: str | None = None

    def fail(self, exc: BaseException) -> None:
        """Record an error that ended this instance's run."""
        self.error = str(exc)
        self.auth_refused = isinstance(exc, ApiAuthError | CredentialsError)
        self.untrusted = isinstance(exc, UntrustedFolderError)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.of("failed")

    def of(self, outcome: str) -> list[BackupResult]:
        return [b for b in self.backups if b.outcome == outcome]

    @property
    def bytes_fetched(self) -> int:
        return sum(b.bytes_fetched for b in self.backups)

    @property
    def files_failed(self) -> int:
        return sum(b.files_failed for b in self.backups)

    def latest_backup(self) -> datetime | None:
        """End time of the newest backup this run has in place (fetched or skipped)."""
        times = [b.end_time for b in self.backups if b.outcome in ("fetched", "skipped")]
        return max((t for t in times if t is not None), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "ok": self.ok,
            "status": self.status,
            "skipped_because": self.skipped,
            "error": self.error,
            "fetched": [b.to_json() for b in self.of("fetched")],
            "would_fetch": [b.to_json() for b in self.of("would-fetch")],
            "skipped": [b.backup_id for b in self.of("skipped")],
            "failed": [b.to_json() for b in self.of("failed")],
            "removed": self.removed,
            "bytes_fetched": self.bytes_fetched,
            "files_failed": self.files_failed,
            "warnings": self.warnings,
        }

    def summary_line(self, dry_run: bool) -> str:
        if self.skipped is not None:
            return printable(f"{self.instance_id}  skipped  {self.skipped}")
        fetched = self.of("would-fetch" if dry_run else "fetched")
        verb, removed = ("would fetch", "would remove") if dry_run else ("fetched", "removed")
        size = sum(b.size_kb * 1024 for b in fetched) if dry_run else self.bytes_fetched
        parts = [
            f"{verb} {len(fetched)} ({format_size(size)})",
            f"skipped {len(self.of('skipped'))}",
            f"{removed} {len(self.removed)}",
        ]
        state = "ok" if self.ok else "FAILED"
        line = f"{self.instance_id}  {state}  {', '.join(parts)}"
        problems = [self.error] if self.error else []
        problems += [f"{b.backup_id}: {b.error}" for b in self.of("failed")]
        if problems:
            line += "; " + "; ".join(p for p in problems if p)
        if self.warnings:  # the instance succeeded, but something was left (retention ...)
            line += "; warning: " + "; ".join(self.warnings)
        return printable(line)


@dataclass(slots=True)
class SyncReport:
    """The whole run."""

    root: str
    shard: str | None
    dry_run: bool
    instances: list[InstanceResult] = field(default_factory=list)
    seconds: float = 0.0
    error: RdsBackupError | None = None  # the run itself failed (listing the instances ...)
    interrupted: bool = False  # by a signal: whatever was done, the run did not finish

    @property
    def failed(self) -> list[InstanceResult]:
        return [i for i in self.instances if not i.ok]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted and not self.failed

    @property
    def bytes_fetched(self) -> int:
        return sum(i.bytes_fetched for i in self.instances)

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        failed = self.failed
        return run_exit_code(
            succeeded=len(self.instances) - len(failed),
            failed=len(failed),
            auth_failed=sum(1 for i in failed if i.auth_refused),
            untrusted=sum(1 for i in failed if i.untrusted),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "root": self.root,
            "shard": self.shard,
            "seconds": round(self.seconds, 3),
            "bytes_fetched": self.bytes_fetched,
            "failed_instances": [i.instance_id for i in self.failed],
            "skipped_instances": [i.instance_id for i in self.instances if i.skipped],
            "error": None if self.error is None else str(self.error),
            "instances": [i.to_json() for i in self.instances],
        }

    def plan_lines(self) -> list[str]:
        """A dry run's plan, one line per backup it would fetch and folder it would remove
        (empty for a real run)."""
        if not self.dry_run:
            return []
        lines = []
        for i in self.instances:
            for b in i.of("would-fetch"):
                ended = b.end_time.isoformat() if b.end_time else "unknown end"
                lines.append(
                    f"would fetch {i.instance_id}/{b.backup_id} "
                    f"({b.type}, ended {ended}, {format_size(b.size_kb * 1024)})"
                )
            lines += [f"would remove {i.instance_id}/{name}" for name in i.removed]
        return [printable(line) for line in lines]

    def summary(self) -> list[str]:
        """The summary's lines: one per instance, then the totals naming each failure."""
        lines = [i.summary_line(self.dry_run) for i in self.instances]
        failed = self.failed
        skipped = sum(1 for i in self.instances if i.skipped)
        total = (
            f"sync: {len(self.instances)} instance(s), {len(failed)} failed, "
            + (f"{skipped} skipped, " if skipped else "")
            + f"{format_size(self.bytes_fetched)} fetched in {format_duration(self.seconds)}"
        )
        if self.dry_run:
            total += " (dry run: nothing fetched or removed)"
        lines.append(total)
        if failed:
            lines.append(printable("failed: " + " ".join(i.instance_id for i in failed)))
        return lines
