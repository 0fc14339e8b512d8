"""The manifest: what a finished backup folder holds, written last, atomically, and only
when every selected file has verified; its presence is what a nightly job (and
``rds-backup verify``) trusts.

A point-in-time chain's folder has one manifest of its own (``"kind": "chain"``, built by
:mod:`downloader.chain.manifest`): the chain's backups in restore order, and every file of
their folders under its path in the folder (``02-incremental-<id>/mysql-bin.000123``), with
the size and checksums of each. A reader that knows nothing of chains still checks every
file from its ``files``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from downloader import __version__
from downloader.disk import storage
from downloader.disk.digest import crc64_hex
from downloader.disk.journal import FileRecord
from downloader.errors import UsageError
from downloader.results import SIZE_ONLY
from downloader.text.safejson import load_json

# 2: crc64 is 16 hex digits (1: a JSON integer, which jq and JavaScript round); both are read.
MANIFEST_VERSION = 2
_READABLE_VERSIONS = (1, 2)
# Some hundreds of bytes per file: far more files than any backup lists.
MAX_MANIFEST = 64 * 1024 * 1024


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
                "crc64": None if r.crc64 is None else crc64_hex(r.crc64),
                "etag": r.etag,
                "last_modified": r.last_modified,
                "finished_at": r.finished_at,
                # An older record that does not say: nothing proves more than the size.
                "integrity": r.integrity or SIZE_ONLY,
                # What its own structure said (None: not checked, or an earlier version).
                "content": r.content.to_json() if r.content is not None else None,
            }
            for r in sorted(records, key=lambda r: r.name)
        ],
    }


CHAIN_KIND = "chain"


def write_manifest(layout: storage.Layout, manifest: dict[str, Any]) -> Path:
    data = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()
    storage.atomic_write(layout.manifest, data)
    return layout.manifest


def remove_manifest(layout: storage.Layout) -> None:
    layout.manifest.unlink(missing_ok=True)


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest, checked for its shape; UsageError (a MalformedJsonError when it does not
    parse) otherwise."""
    try:
        # Not through a link, nor a FIFO (which would block): a planted one is refused.
        with open(storage.open_private(path, os.O_RDONLY), "rb") as fh:
            data = fh.read(MAX_MANIFEST + 1)
    except FileNotFoundError as exc:
        raise UsageError(f"no manifest at {path}: the folder holds no complete backup") from exc
    except OSError as exc:
        raise UsageError(f"manifest {path} is unreadable: {exc.strerror or exc}") from exc
    return _parse(data, path)


def load_manifest_at(folder_fd: int, folder: Path) -> dict[str, Any]:
    """:func:`load_manifest` of the folder open as ``folder_fd`` (named ``folder`` in
    messages), read through the descriptor: whatever ``folder`` now names is not looked at."""
    path = folder / storage.MANIFEST_NAME
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(storage.MANIFEST_NAME, flags, dir_fd=folder_fd)
    except FileNotFoundError as exc:
        raise UsageError(f"no manifest at {path}: the folder holds no complete backup") from exc
    except OSError as exc:
        raise UsageError(f"manifest {path} is unreadable: {exc.strerror or exc}") from exc
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"manifest {path} is not a regular file")
        data = fh.read(MAX_MANIFEST + 1)
    return _parse(data, path)


def _parse(data: bytes, path: Path) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST:
        raise UsageError(f"manifest {path} is larger than {MAX_MANIFEST // 2**20} MiB")
    obj = load_json(data, f"manifest {path}")
    if (
        not isinstance(obj, dict)
        or obj.get("manifest_version") not in _READABLE_VERSIONS
        or not isinstance(obj.get("files"), list)
    ):
        raise UsageError(f"manifest {path} is not an rds-backup manifest of a known version")
    return obj
