"""``download --dry-run``: what a download would fetch into its folder, and touching nothing.

For each selected file: its size, and what the folder already holds of it (in place from an
earlier run, or so many bytes a resume would keep, as the journal records them), then what
is left to fetch and the free space after. Everything here only reads: no folder, lock,
journal or part file is created, so the folder is exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from downloader.disk import storage
from downloader.disk.journal import Journal
from downloader.models import BackupFile
from downloader.text.fmt import format_size, printable

__all__ = ["FilePreview", "Preview", "preview"]


@dataclass(frozen=True, slots=True)
class FilePreview:
    name: str
    size: int  # bytes: the record's when it knows them, else the listed KB
    held: int  # bytes already in the folder that a run would keep
    state: str  # "in place" | "resume" | "fetch"

    @property
    def to_fetch(self) -> int:
        return max(0, self.size - self.held)


@dataclass(frozen=True, slots=True)
class Preview:
    backup_id: str
    out_dir: Path
    files: tuple[FilePreview, ...]
    free: int | None  # bytes free where the folder is (or would be made)

    @property
    def to_fetch(self) -> int:
        return sum(f.to_fetch for f in self.files)

    @property
    def free_after(self) -> int | None:
        return None if self.free is None else self.free - self.to_fetch

    def lines(self) -> list[str]:
        out = [f"dry run: backup {self.backup_id} into {self.out_dir} (nothing is written)"]
        for f in self.files:
            held = f" ({format_size(f.held)} held)" if f.state == "resume" else ""
            out.append(printable(f"  {f.state:<8}  {format_size(f.size):>10}  {f.name}{held}"))
        after = "unknown" if self.free_after is None else format_size(self.free_after)
        out.append(
            f"would fetch {format_size(self.to_fetch)} of {len(self.files)} file(s); "
            f"free space after: {after}"
        )
        if self.free_after is not None and self.free_after < 0:
            out.append("not enough free space: the download would stop with exit 6")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "backup_id": self.backup_id,
            "output": str(self.out_dir),
            "files": [
                {"name": f.name, "size": f.size, "held": f.held, "state": f.state}
                for f in self.files
            ],
            "bytes_to_fetch": self.to_fetch,
            "free_bytes": self.free,
            "free_bytes_after": self.free_after,
        }


def preview(out_dir: Path, backup_id: str, files: Sequence[BackupFile]) -> Preview:
    """What the folder holds of ``files`` and what a download would fetch (reads only)."""
    layout = storage.Layout(out_dir)
    journal = Journal(layout)
    seen = []
    for f in files:
        listed = f.size_kb * 1024
        final = layout.final(f.name)  # a hostile name is refused here too (UsageError)
        rec, _why = journal.load(backup_id, f.name, f.size_kb)
        size = rec.size if rec is not None and rec.size is not None else listed
        if _regular(final) and rec is not None and rec.complete:
            seen.append(FilePreview(f.name, size, size, "in place"))
        elif rec is not None and rec.done:
            held = sum(end - start for start, end in rec.done)
            seen.append(FilePreview(f.name, size, min(held, size), "resume"))
        else:
            seen.append(FilePreview(f.name, size, 0, "fetch"))
    return Preview(backup_id, Path(out_dir), tuple(seen), _free(Path(out_dir)))


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _free(path: Path) -> int | None:
    """Free bytes on the file system the folder is on, or would be made on."""
    for where in (path, *path.absolute().parents):
        try:
            return shutil.disk_usage(where).free
        except OSError:
            continue
    return None
