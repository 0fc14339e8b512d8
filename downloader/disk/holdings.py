"""What an output folder holds: the backups its manifest, journal and chain note name.

A folder holds one backup or one point-in-time chain. A chain's folder keeps a note
(``.rds-backup/chain.json``) naming the chain, and one subfolder per backup named
``NN-type-backup_id``; both are facts of the folder's layout, read here by ``download``,
the chain and ``verify`` alike.
"""

from __future__ import annotations

import re

from downloader.disk import storage
from downloader.disk.journal import Journal
from downloader.disk.manifest import load_manifest
from downloader.errors import MalformedJsonError, UntrustedFolderError, UsageError
from downloader.text.safejson import load_json

__all__ = ["CHAIN_PREFIX", "FOLDER_RE", "MARKER_NAME", "folder_backups", "held_chain"]

# A chain folder's name: NN-type-backup_id (NN zero-padded, so that names sort in order).
FOLDER_RE = re.compile(r"^(\d{2,})-([a-z]+)-(.+)$")
# The prefix of a chain's identity, where a single download's manifest holds a backup id.
CHAIN_PREFIX = "chain:"
# The chain's note in the state folder.
MARKER_NAME = "chain.json"


def held_chain(layout: storage.Layout) -> set[str]:
    """The chain (``chain:<instance>@<instant>``) a folder is for, from the note its chain
    download left in the state folder; empty when there is none (or it cannot be read)."""
    try:
        data = storage.read_private(layout.state / MARKER_NAME)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError:
        return set()
    try:
        obj = load_json(data, "chain note")
    except MalformedJsonError:
        return set()
    held = obj.get("chain") if isinstance(obj, dict) else None
    return {held} if isinstance(held, str) and held.startswith(CHAIN_PREFIX) else set()


def folder_backups(layout: storage.Layout) -> set[str]:
    """The backups an output folder holds: the one its manifest names, and those its journal
    records name (a download not finished yet has no manifest)."""
    held = Journal(layout).backup_ids() | held_chain(layout)
    try:
        manifest = load_manifest(layout.manifest)
    except UntrustedFolderError:
        raise
    except UsageError:
        return held  # none, or not ours to read: the records still say
    if isinstance(manifest.get("backup_id"), str):
        held.add(manifest["backup_id"])
    return held
