"""A chain folder's manifest, built from each backup folder's own, in chain order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from downloader import __version__
from downloader.chain.select import Chain, ChainLink, utc_text
from downloader.disk.manifest import CHAIN_KIND, MANIFEST_VERSION

__all__ = ["build_chain_manifest"]


def build_chain_manifest(
    chain: Chain, subs: Sequence[tuple[ChainLink, dict[str, Any]]]
) -> dict[str, Any]:
    """The chain folder's manifest from each backup folder's own (``subs``, in chain order):
    the chain in order (id, type, begin, end, its files' names), and every file's entry
    under its path in the chain folder."""
    files: list[dict[str, Any]] = []
    backups = []
    for link, sub in subs:
        names = []
        for entry in sub["files"]:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                names.append(entry["name"])
                files.append({**entry, "name": f"{link.folder}/{entry['name']}"})
        b = link.backup
        backups.append(
            {
                "position": link.position,
                "folder": link.folder,
                "backup_id": b.id,
                "type": b.type,
                "begin_time": b.begin_time.isoformat() if b.begin_time else None,
                "end_time": b.end_time.isoformat() if b.end_time else None,
                "files": names,
            }
        )
    return {
        "manifest_version": MANIFEST_VERSION,
        "kind": CHAIN_KIND,
        "tool": f"rds-backup {__version__}",
        "backup_id": chain.id,
        "instance_id": chain.instance_id,
        "engine": chain.engine,
        "to_time": chain.to_time.isoformat(),
        "to_time_utc": utc_text(chain.to_time),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "chain": backups,
        "files": files,
    }
