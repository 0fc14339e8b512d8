"""``rds-backup instances``, ``backups`` and ``files``: what the API lists, without
downloading. With ``--json`` each prints one object holding its list."""

from __future__ import annotations

from datetime import datetime

import click

from downloader.api.factory import ApiSettings, open_client
from downloader.models import Backup, FileListing, Instance
from downloader.text.fmt import format_size

from .chain_cmd import check_chain_options, show_chain, to_time_option
from .options import api_options, output_options
from .paramtypes import RdsId
from .render import echo_json, echo_table, iso_time, local_time
from .runner import run_async

__all__ = ["backups", "files", "instances"]

BACKUP_TYPES = ("auto", "manual", "incremental", "fragment")


@click.command()
@click.argument("backup_id", type=RdsId("backup"))
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
                local_time(f.link_expired_time, "unknown"),
            )
            for f in listing.files
        ),
    )


@click.command()
@click.option(
    "--instance-id",
    type=RdsId("instance"),
    required=True,
    show_envvar=True,
    help="RDS instance id (rds-backup instances lists them).",
)
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
        rows = [
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
        echo_json({"instance_id": instance_id, "backups": rows})
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
                local_time(b.begin_time),
                local_time(b.end_time),
            )
            for b in found
        ),
    )


@click.command()
@api_options
@output_options
def instances(as_json: bool, api: ApiSettings) -> None:
    """List the project's RDS instances (id, name, engine, version, status, type): the ids
    that --instance-id, backups and sync take."""

    async def main() -> list[Instance]:
        async with open_client(api) as client:
            return await client.list_instances()

    found = sorted(run_async(main), key=lambda i: (i.name, i.id))
    if as_json:
        rows = [
            {
                "id": i.id,
                "name": i.name,
                "engine": i.engine,
                "engine_version": i.engine_version,
                "status": i.status,
                "type": i.type,
            }
            for i in found
        ]
        echo_json({"instances": rows})
        return
    echo_table(
        ("ID", "NAME", "ENGINE", "STATUS", "TYPE"),
        (
            (i.id, i.name, f"{i.engine or '-'} {i.engine_version or ''}".strip(), i.status, i.type)
            for i in found
        ),
    )
