"""``rds-backup download``: options -> configuration -> :func:`downloader.download.run_download`,
then the report (summary table, totals, next steps, or JSON) and the run's exit code."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from downloader.api.factory import ApiSettings, open_client
from downloader.cli.logsetup import configure_logging
from downloader.errors import NothingSelectedError, UsageError
from downloader.models import Backup, FileListing
from downloader.progress import TerminalReporter, make_reporter

from .chain_cmd import download_chain, to_time_option
from .options import (
    Globals,
    api_options,
    chunk_size_option,
    connect_timeout_option,
    env_name,
    expiry_margin_option,
    insecure_links_option,
    jobs_option,
    limit_rate_option,
    links_file_option,
    max_connections_option,
    md5_check_option,
    metrics_file_option,
    output_folder_option,
    output_options,
    preallocate_option,
    progress_interval_option,
    progress_option,
    retries_option,
    sha256_option,
    split_option,
    stall_timeout_option,
    transfer_configs,
    wait_lock_option,
)
from .paramtypes import RdsId
from .render import echo_json, finish_run
from .runmetrics import records_run_metrics
from .runner import run_async
from .sections import API_OPTIONS, TRANSFER_OPTIONS, SectionedCommand

if TYPE_CHECKING:
    from downloader.download import RunReport

__all__ = ["download"]

log = logging.getLogger("rds_backup.cli")

ProgressMode = Literal["auto", "tty", "log", "quiet"]

# --help in the order a user looks for things: which files, where they go, how fast, how
# well checked, what is printed, and how the API is reached.
SECTIONS = (
    (
        "What to fetch",
        (
            "--instance-id",
            "--latest",
            "--to-time",
            "--backup-type",
            "--database",
            "--include",
            "--exclude",
            "--links-file",
        ),
    ),
    ("Where", ("--output", "--wait-lock", "--preallocate")),
    ("Transfer", TRANSFER_OPTIONS),
    ("Checks", ("--md5-check", "--sha256", "--recheck")),
    ("Output", ("--dry-run", "--progress", "--progress-interval", "--json", "--metrics-file")),
    ("API", API_OPTIONS),
)


@click.command(
    cls=SectionedCommand,
    sections=SECTIONS,
    common=(
        "--output",
        "--instance-id",
        "--latest",
        "--to-time",
        "--database",
        "--dry-run",
        "--limit-rate",
        "--progress",
        "--json",
        "--project-id",
    ),
    example=(
        "rds-backup download --instance-id ID --latest -o /restore   # the newest backup",
        "rds-backup download BACKUP_ID -o /restore --database sales  # one database",
        "rds-backup download BACKUP_ID -o /restore --dry-run         # what it would fetch",
    ),
)
@click.argument("backup_id", required=False, envvar=env_name("BACKUP_ID"), type=RdsId("backup"))
@output_folder_option("Output folder.")
@api_options
@links_file_option
@retries_option("its file fails")
@stall_timeout_option
@expiry_margin_option
@limit_rate_option
@click.option(
    "--instance-id",
    type=RdsId("instance"),
    show_envvar=True,
    help="The backup's instance: with --latest, whose newest backup to fetch; with "
    "BACKUP_ID, lets an error say a backup's status (FAILED, BUILDING) and what to take instead.",
)
@click.option(
    "--latest",
    is_flag=True,
    show_envvar=True,
    help="Download the newest COMPLETED backup of --instance-id (instead of a BACKUP_ID).",
)
@to_time_option("download")
@click.option(
    "--backup-type",
    "backup_types",
    multiple=True,
    show_envvar=True,
    type=click.Choice(["auto", "manual", "incremental", "fragment"]),
    help="With --latest: backup types to consider (repeatable; default auto).",
)
@click.option(
    "--include",
    multiple=True,
    show_envvar=True,
    help="Only files whose name matches this glob (repeatable).",
)
@click.option(
    "--exclude",
    multiple=True,
    show_envvar=True,
    help="Skip files whose name matches this glob (repeatable).",
)
@click.option(
    "--database",
    "databases",
    multiple=True,
    show_envvar=True,
    help="Only files of this database (database-level backups; repeatable).",
)
@jobs_option("Files downloaded at once.")
@split_option()
@max_connections_option("Global connection budget for the whole run.")
@chunk_size_option()
@connect_timeout_option
@preallocate_option
@md5_check_option(
    "Check the MD5 against ETags that look like one (multipart uploads' ETags are not MD5s)."
)
@sha256_option(
    "Also record each file's SHA-256 in the manifest (about 0.5 CPU-seconds per GiB; "
    "a CRC-64 is always recorded)."
)
@click.option(
    "--recheck",
    is_flag=True,
    show_envvar=True,
    help="Read every file finished earlier and compare it with its recorded checksums; "
    "fetch again any that changed. Without it, only files whose size, mtime, ctime or "
    "inode changed are read.",
)
@insecure_links_option(
    "Do not verify TLS certificates of download links (dotted bucket names "
    "can break certificate matching). Logged; never the default."
)
@wait_lock_option("Wait for another run on the same folder instead of exiting.")
@click.option(
    "--dry-run",
    is_flag=True,
    show_envvar=True,
    help="Print what would be fetched (each file, what the folder already holds of it, the "
    "free space after) and write nothing.",
)
@progress_option("Bars at a terminal, periodic log lines otherwise.")
@progress_interval_option("Seconds between progress lines without a terminal.")
@output_options
@metrics_file_option
@click.pass_obj
@records_run_metrics
def download(
    g: Globals,
    /,
    backup_id: str | None,
    output: Path,
    links_file: str | None,
    instance_id: str | None,
    latest: bool,
    to_time: datetime | None,
    backup_types: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    databases: tuple[str, ...],
    jobs: int,
    split: int,
    max_connections: int,
    chunk_size: int | None,
    retries: int,
    connect_timeout: float,
    stall_timeout: float,
    expiry_margin: float,
    limit_rate: int | None,
    preallocate: bool,
    md5_check: bool,
    sha256: bool,
    recheck: bool,
    insecure_links: bool,
    wait_lock: bool,
    dry_run: bool,
    progress_mode: ProgressMode,
    progress_interval: float,
    as_json: bool,
    api: ApiSettings,
) -> int:
    """Download every file of BACKUP_ID into the output folder (resumable)."""
    from downloader.download import LINKS_FILE_ID, Selection, run_download
    from downloader.preview import Preview, preview

    if latest and not instance_id:
        raise UsageError("--latest needs --instance-id")
    if latest and backup_id:
        # Never one silently ignored: each names a backup, and a folder holds only one.
        raise UsageError(
            f"give either BACKUP_ID ({backup_id}) or --latest, not both: --latest picks the "
            "newest backup of --instance-id"
        )
    if not latest and not backup_id and not links_file and to_time is None:
        raise UsageError("give a BACKUP_ID, or --instance-id with --latest, or --links-file")
    if links_file and latest:
        raise UsageError("--links-file and --latest cannot be combined")
    params = click.get_current_context().params
    base, transport = transfer_configs(output, api, params)
    selection = Selection(include, exclude, databases)
    g = g.quiet_for(progress_mode)
    reporter = make_reporter(mode="quiet" if g.quiet else progress_mode, interval=progress_interval)
    if isinstance(reporter, TerminalReporter):
        configure_logging(fmt=g.log_format, level=g.log_level, quiet=g.quiet, tqdm_aware=True)
    if dry_run and to_time is not None:
        raise UsageError("--dry-run with --to-time: backups --to-time shows the chain")
    if to_time is not None:  # a point-in-time chain: chain_cmd.py checks what goes with it
        return download_chain(g, api, base, transport, reporter, params)

    async def go(
        bid: str,
        listing: FileListing,
        fetch: Callable[[], Awaitable[FileListing]] | None,
        engine_name: str | None,
    ) -> tuple[RunReport | Preview, FileListing, str | None]:
        cfg = dataclasses.replace(base, backup_id=bid)
        if dry_run:
            chosen = selection.apply(listing.files)
            if not chosen:
                raise NothingSelectedError(selection.why_nothing(listing.files))
            return preview(cfg.out_dir, bid, chosen), listing, engine_name
        report = await run_download(
            cfg,
            listing,
            fetch=fetch,
            selection=selection,
            transport=transport,
            reporter=reporter,
            wait_lock=wait_lock,
            engine_name=engine_name,
        )
        return report, listing, engine_name

    async def main() -> tuple[RunReport | Preview, FileListing, str | None]:
        if links_file:
            from downloader.api.parse import load_links_file

            listing = load_links_file(links_file)
            log.info(
                "using saved links from %s; links cannot be renewed",
                "stdin" if links_file == "-" else links_file,
            )
            # A links file names no backup: BACKUP_ID, when given, makes the run (and its
            # folder) that backup's, resumable with the API; otherwise it is LINKS_FILE_ID's.
            return await go(backup_id or LINKS_FILE_ID, listing, None, None)
        async with open_client(api) as client:
            bid, engine_name = backup_id, None
            if latest:
                assert instance_id is not None
                chosen: Backup = await client.latest_backup(instance_id, backup_types or ("auto",))
                bid, engine_name = chosen.id, chosen.engine
                log.info(
                    "latest backup of %s: %s (%s, ended %s)",
                    instance_id,
                    chosen.id,
                    chosen.type,
                    chosen.end_time,
                )
            elif instance_id and bid:
                # Only to name the engine in the summary's restore hints; not essential.
                found = await client.list_backups(instance_id, backup_id=bid)
                engine_name = next((b.engine for b in found if b.id == bid), None)
            assert bid is not None
            chosen_id = bid

            async def fetch() -> FileListing:
                # The instance, when known, explains a backup without files (FAILED ...).
                return await client.show_backup_files(chosen_id, instance_id=instance_id)

            return await go(chosen_id, await fetch(), fetch, engine_name)

    try:
        report, listing, engine_name = run_async(main)
    finally:
        reporter.close()
    if isinstance(report, Preview):
        if as_json:
            echo_json(report.to_json())
        else:
            for line in report.lines():
                click.echo(line)
        return 0
    return finish_run(
        report,
        listing,
        reporter,
        output=output,
        as_json=as_json,
        quiet=g.quiet,
        engine_name=engine_name,
    )
