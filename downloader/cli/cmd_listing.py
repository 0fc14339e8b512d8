"""``rds-backup files`` and ``rds-backup backups``: what the API lists, without downloading."""

from __future__ import annotations

from datetime import datetime

import click

from downloader.api.factory import ApiSettings, open_client
from downloader.models import Backup, FileListing
from downloader.text.fmt import format_size

from .chain_cmd import check_chain_options, show_chain, to_time_option
from .options import api_options, output_options
from .render import echo_json, echo_table, iso_time
from .runner import run_async

__all__ = ["backups", "files"]

BACKUP_TYPES = ("auto", "manual", "incremental", "fragment")


@click.command()
@click.argument("backup_id")
@api_options
@output_options
def files(backup_id: str, as_json: bool, api: ApiSettings) -> None:
    """Show the files of BACKUP_ID (name, size, database, link expiry) without downloading."""

    async def main() -> FileListing:
        async with open_client(api) as client:
            return await client.show_backup_files(backup_id)

    listing = run_async(main)
    if as_json:
        echo_json(
            {
                "backup_id": backup_id,
                "bucket": listing.bucket,
                "files": [
                    {
                        "name": f.name,
                        "size_kb": f.size_kb,
                        "database_name": f.database_name,
                        "link_expired_time": iso_time(f.link_expired_time),
                    }
                    for f in listing.files
                ],
            }
        )
        return
    echo_table(
        ("NAME", "SIZE", "DATABASE", "LINK EXPIRES"),
        (
            (
                f.name,
                format_size(f.size_kb * 1024),
                f.database_name or "-",
                iso_time(f.link_expired_time, "unknown"),
            )
            for f in listing.files
        ),
    )


@click.command()
@click.option("--instance-id", required=True, show_envvar=True, help="RDS instance id.")
@click.option(
    "--backup-type",
    type=click.Choice(list(BACKUP_TYPES)),
    show_envvar=True,
    help="Only this type.",
)
@click.option(
    "--status",
    type=click.Choice(["COMPLETED", "BUILDING", "FAILED", "DELETING"]),
    show_envvar=True,
    help="Only this status (filtered here: the API filters status for SQL Server only).",
)
@to_time_option("list")
@api_options
@output_options
def backups(
    instance_id: str,
    backup_type: str | None,
    status: str | None,
    to_time: datetime | None,
    as_json: bool,
    api: ApiSettings,
) -> None:
    """List the backups of an instance, newest first; with --to-time, the chain of backups
    that restores it to that moment, in restore order."""
    if to_time is not None:
        filters = {"--backup-type": backup_type, "--status": status}
        check_chain_options(instance_id=instance_id, backup_id=None, filters=filters)
        show_chain(api, instance_id, to_time, as_json=as_json)
        return

    async def main() -> list[Backup]:
        async with open_client(api) as client:
            return await client.list_backups(instance_id, backup_type=backup_type)

    found = [b for b in run_async(main) if status is None or b.status.upper() == status]
    found.sort(key=lambda b: b.end_time.timestamp() if b.end_time else 0.0, reverse=True)
    if as_json:
        echo_json(
            [
                {
                    "id": b.id,
                    "name": b.name,
                    "instance_id": b.instance_id,
                    "type": b.type,
                    "status": b.status,
                    "size_kb": b.size_kb,
                    "engine": b.engine,
                    "engine_version": b.engine_version,
                    "begin_time": iso_time(b.begin_time),
                    "end_time": iso_time(b.end_time),
                    "databases": list(b.databases),
                }
                for b in found
            ]
        )
        return
    echo_table(
        ("ID", "TYPE", "STATUS", "ENGINE", "SIZE", "BEGIN", "END"),
        (
            (
                b.id,
                b.type,
                b.status,
                f"{b.engine or '-'} {b.engine_version or ''}".strip(),
                format_size(b.size_kb * 1024),
                iso_time(b.begin_time, "-"),
                iso_time(b.end_time, "-"),
            )
            for b in found
        ),
    )
