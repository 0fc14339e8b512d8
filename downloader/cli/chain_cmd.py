"""``--to-time``: a point-in-time chain, shown by ``backups`` and fetched by ``download``.

The option and its type, the checks of what it may be combined with, and the glue between
the API client, :mod:`downloader.chain.select` (which backups) and :mod:`downloader.chain.run` (the
run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from downloader.api.factory import ApiSettings, open_client
from downloader.chain.select import Chain, parse_point_in_time, select_chain
from downloader.errors import UsageError
from downloader.progress import ReporterBase

from .options import Globals
from .render import echo_json, echo_table, finish_chain, iso_time, local_time
from .runner import run_async

if TYPE_CHECKING:
    from downloader.api.client import RdsClient
    from downloader.chain.run import ChainReport
    from downloader.download import TransportConfig
    from downloader.engine.core import EngineConfig

__all__ = [
    "PointInTime",
    "check_chain_options",
    "download_chain",
    "show_chain",
    "to_time_option",
]

log = logging.getLogger("rds_backup.cli")

if TYPE_CHECKING:
    _TimeType = click.ParamType[datetime]  # generic in newer click releases only
else:
    _TimeType = click.ParamType


class PointInTime(_TimeType):
    """ISO 8601 with a UTC offset (``2026-11-29T13:00:00+08:00``, ``...Z``): an instant.
    A time without an offset is refused (exit 2): whose 13:00 would it be?"""

    name = "time"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        return "ISO8601"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_point_in_time(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


def to_time_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--to-time T``; ``what`` says what the command does with the chain."""
    return click.option(
        "--to-time",
        type=PointInTime(),
        show_envvar=True,
        help=f"Point in time (ISO 8601 with offset, e.g. 2026-11-29T13:00:00+08:00): {what} "
        "the newest full backup that ended by then and every incremental up to it "
        "(needs --instance-id).",
    )


def check_chain_options(
    *,
    instance_id: str | None,
    backup_id: str | None,
    latest: bool = False,
    links_file: str | None = None,
    filters: Mapping[str, object],
) -> str:
    """What ``--to-time`` refuses, each a one-line usage error; returns the instance id.

    Filters (``--include``, ``--database``, ``--backup-type``...) are refused rather than
    applied to every backup: a restore needs every file of every backup of the chain, and a
    chain missing one would restore to a wrong state without a word."""
    if backup_id:
        raise UsageError(
            f"give either BACKUP_ID ({backup_id}) or --to-time, not both: --to-time picks the "
            "backups of --instance-id itself"
        )
    if latest:
        raise UsageError("--latest and --to-time cannot be combined: --to-time picks the backups")
    if links_file:
        raise UsageError(
            "--links-file and --to-time cannot be combined: a links file holds one backup's "
            "links, a chain needs the API for each backup's"
        )
    for option, value in filters.items():
        if value:
            raise UsageError(
                f"{option} cannot be used with --to-time: a point-in-time restore needs every "
                "file of every backup in the chain"
            )
    if not instance_id:
        raise UsageError("--to-time needs --instance-id (whose backups to chain)")
    return instance_id


async def find_chain(client: RdsClient, instance_id: str, to_time: datetime) -> Chain:
    """Every page of the instance's backups (all types), then the chain (pure)."""
    backups = await client.list_backups(instance_id)
    chain = select_chain(backups, to_time, instance_id)
    log.info(
        "chain of %s to %s: full backup %s and %d incremental backup(s)",
        instance_id,
        to_time.isoformat(),
        chain.full.id,
        len(chain.incrementals),
    )
    return chain


def show_chain(api: ApiSettings, instance_id: str, to_time: datetime, *, as_json: bool) -> None:
    """``backups --to-time``: the chain as a table (or JSON), fetching nothing."""

    async def main() -> Chain:
        async with open_client(api) as client:
            return await find_chain(client, instance_id, to_time)

    chain = run_async(main)
    rows = [
        {
            "position": link.position,
            "folder": link.folder,
            "id": link.backup.id,
            "type": link.backup.type,
            "status": link.backup.status,
            "size_kb": link.backup.size_kb,
            "begin_time": iso_time(link.backup.begin_time),
            "end_time": iso_time(link.backup.end_time),
        }
        for link in chain.links
    ]
    if as_json:
        echo_json(
            {
                "instance_id": instance_id,
                "to_time": to_time.isoformat(),
                "engine": chain.engine,
                "reaches": chain.reach.isoformat(),
                "backups": rows,
            }
        )
        return
    from downloader.text.fmt import format_size

    echo_table(
        ("#", "ID", "TYPE", "SIZE", "BEGIN", "END"),
        (
            (
                str(r["position"]),
                str(r["id"]),
                str(r["type"]),
                format_size(int(str(r["size_kb"])) * 1024),
                local_time(link.backup.begin_time),
                local_time(link.backup.end_time),
            )
            for r, link in zip(rows, chain.links, strict=True)
        ),
    )
    click.echo(
        f"{len(rows)} backups restore instance {instance_id} to {to_time.isoformat()}: "
        f"the full backup, then {len(rows) - 1} incremental(s) in this order"
    )


def download_chain(
    g: Globals,
    api: ApiSettings,
    config: EngineConfig,
    transport: TransportConfig,
    reporter: ReporterBase,
    params: Mapping[str, Any],
) -> int:
    """``download --to-time``: check what came with it (``params``, the command's), find
    the chain, fetch it into ``config.out_dir``, report."""
    from downloader.chain.run import run_chain
    from downloader.models import FileListing

    try:
        instance_id = check_chain_options(
            instance_id=params.get("instance_id"),
            backup_id=params.get("backup_id"),
            latest=bool(params.get("latest")),
            links_file=params.get("links_file"),
            filters={
                "--include": params.get("include"),
                "--exclude": params.get("exclude"),
                "--database": params.get("databases"),
                "--backup-type": params.get("backup_types"),
            },
        )
        to_time: datetime = params["to_time"]

        async def main() -> ChainReport:
            async with open_client(api) as client:
                chain = await find_chain(client, instance_id, to_time)

                async def listing_for(backup_id: str) -> FileListing:
                    return await client.show_backup_files(backup_id, instance_id=instance_id)

                return await run_chain(
                    chain,
                    config,
                    listing_for=listing_for,
                    transport=transport,
                    reporter=reporter,
                    wait_lock=bool(params.get("wait_lock")),
                    at_once=min(config.jobs, 4),
                )

        report = run_async(main)
    finally:
        reporter.close()
    return finish_chain(report, reporter, as_json=bool(params.get("as_json")), quiet=g.quiet)
