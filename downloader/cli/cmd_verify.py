"""``rds-backup verify``: re-check a downloaded folder against its manifest."""

from __future__ import annotations

from pathlib import Path

import click

from downloader.errors import VerificationError
from downloader.results import SERVER_CHECKSUM
from downloader.text.fmt import printable

from .options import output_options
from .paramtypes import NonEmptyPath
from .render import echo_json, size_only_note

__all__ = ["verify"]


@click.command()
@click.argument("folder", type=NonEmptyPath(exists=True, file_okay=False, path_type=Path))
@output_options
def verify(folder: Path, as_json: bool) -> int:
    """Re-check FOLDER against its manifest (sizes, CRC-64, SHA-256 and MD5 where recorded)
    and each file's own structure (xbstream chunks, gzip and tar, binlog events); exit 4 on
    any mismatch or damage. A point-in-time chain's folder (download --to-time) is checked
    backup folder by backup folder, in chain order; a missing one fails."""
    from downloader.content import checker_for
    from downloader.disk.manifest import CHAIN_KIND
    from downloader.disk.verify import verify_folder

    manifest, checks = verify_folder(folder, checker_for=checker_for)
    bad = [c for c in checks if not c.ok]
    size_only = sum(1 for c in checks if c.ok and c.integrity != SERVER_CHECKSUM)
    chain = manifest.get("chain") if manifest.get("kind") == CHAIN_KIND else None
    if as_json:
        extra = {} if chain is None else {"kind": CHAIN_KIND, "chain": chain}
        echo_json(
            {
                "backup_id": manifest.get("backup_id"),
                **extra,
                "ok": not bad,
                "size_only": size_only,
                "files": [
                    {
                        "name": c.name,
                        "ok": c.ok,
                        "detail": c.detail,
                        "integrity": c.integrity,
                        "content": c.content.to_json() if c.content is not None else None,
                    }
                    for c in checks
                ],
            }
        )
    else:
        for c in checks:
            # The sums matched what was recorded as the bytes arrived; for a file the store
            # gave no checksum of, that proves it unchanged since, not that it arrived right.
            level = (
                " as recorded at download (which the store could not confirm: no checksum)"
                if c.ok and c.integrity != SERVER_CHECKSUM
                else ""
            )
            click.echo(printable(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}  {c.detail}{level}"))
        what = f"backup {manifest.get('backup_id')}"
        if isinstance(chain, list):
            what = (
                f"a chain of {len(chain)} backups of instance {manifest.get('instance_id')} "
                f"to {manifest.get('to_time')}"
            )
        click.echo(f"{len(checks) - len(bad)} of {len(checks)} files verified ({printable(what)})")
        if size_only:
            click.echo(size_only_note(size_only))
    # Each failure was printed above; the exit code is the verification failure's.
    return VerificationError.exit_code if bad else 0
