"""The manifest: what a finished backup folder holds, and checking a folder against it.

The manifest is written last, atomically, and only when every selected file has verified;
its presence is what a nightly job (and ``rds-backup verify``) trusts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from downloader import __version__, storage
from downloader.errors import UsageError
from downloader.hashing import hash_file
from downloader.journal import FileRecord

MANIFEST_VERSION = 1


def build_manifest(
    *, backup_id: str, bucket: str | None, engine: str | None, records: Sequence[FileRecord]
) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "tool": f"rds-backup {__version__}",
        "backup_id": backup_id,
        "bucket": bucket,
        "engine": engine,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": [
            {
                "name": r.name,
                "database_name": r.database_name,
                "size": r.size,
                "size_kb": r.size_kb,
                "sha256": r.sha256,
                "md5": r.md5,
                "crc64": r.crc64,
                "etag": r.etag,
                "last_modified": r.last_modified,
                "finished_at": r.finished_at,
            }
            for r in sorted(records, key=lambda r: r.name)
        ],
    }


def write_manifest(layout: storage.Layout, manifest: dict[str, Any]) -> Path:
    data = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()
    storage.atomic_write(layout.manifest, data)
    return layout.manifest


def remove_manifest(layout: storage.Layout) -> None:
    layout.manifest.unlink(missing_ok=True)


def load_manifest(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise UsageError(f"no manifest at {path}: the folder holds no complete backup") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"manifest {path} is unreadable: {exc}") from exc
    if (
        not isinstance(obj, dict)
        or obj.get("manifest_version") != MANIFEST_VERSION
        or not isinstance(obj.get("files"), list)
    ):
        raise UsageError(f"manifest {path} is not an rds-backup manifest of a known version")
    return obj


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def verify_folder(
    folder: Path, *, progress: Callable[[str, int], None] | None = None
) -> tuple[dict[str, Any], list[Check]]:
    """Re-read every file the manifest lists and compare its size and every checksum the
    manifest records (CRC-64; SHA-256 and MD5 where present)."""
    layout = storage.Layout(folder)
    manifest = load_manifest(layout.manifest)
    checks = []
    for entry in manifest["files"]:
        name = entry.get("name")
        if not isinstance(name, str):
            checks.append(Check(str(name), False, "manifest entry without a name"))
            continue
        try:
            path = layout.final(name)
        except UsageError as exc:
            checks.append(Check(name, False, str(exc)))
            continue
        checks.append(_check_file(path, name, entry, progress))
    return manifest, checks


def _check_file(
    path: Path, name: str, entry: dict[str, Any], progress: Callable[[str, int], None] | None
) -> Check:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Check(name, False, "missing")
    if size != entry.get("size"):
        return Check(name, False, f"size {size}, manifest says {entry.get('size')}")
    want_crc = entry.get("crc64")
    want_sha = entry.get("sha256")
    want_md5 = entry.get("md5")
    if not any(isinstance(w, (int, str)) for w in (want_crc, want_sha, want_md5)):
        return Check(name, False, "the manifest records no checksum for this file")
    digests = hash_file(
        path,
        sha256=bool(want_sha),
        md5=bool(want_md5),
        progress=None if progress is None else lambda n: progress(name, n),
    )
    crc, sha, md5 = digests.crc64, digests.sha256, digests.md5
    changed = "mismatch: the file changed since it was downloaded"
    if want_crc is not None and crc.value != want_crc:
        return Check(name, False, f"CRC-64 {changed}")
    if sha is not None and sha.hexdigest() != want_sha:
        return Check(name, False, f"SHA-256 {changed}")
    if md5 is not None and md5.hexdigest() != want_md5:
        return Check(name, False, f"MD5 {changed}")
    return Check(name, True, "ok")
