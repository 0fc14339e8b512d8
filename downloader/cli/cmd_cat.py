"""``rds-backup cat``: one backup file to stdout, in order, fetched in parallel.

Only the file's bytes go to stdout; logs and progress go to stderr, as in ``download``.
"""

from __future__ import annotations

import difflib
import logging
import sys
from typing import Literal

import click

from downloader.api.factory import ApiSettings, open_client
from downloader.cli.logsetup import configure_logging
from downloader.errors import UsageError
from downloader.models import BackupFile, FileListing
from downloader.progress import TerminalReporter, make_reporter
from downloader.text.fmt import format_rate, format_size, printable

from .options import (
    Globals,
    api_options,
    chunk_size_option,
    expiry_margin_option,
    limit_rate_option,
    links_file_option,
    max_connections_option,
    md5_check_option,
    progress_option,
    retries_option,
    split_option,
    stall_timeout_option,
)
from .paramtypes import ByteSize, RdsId
from .runner import run_async
from .sections import API_OPTIONS, SectionedCommand

__all__ = ["cat"]

log = logging.getLogger("rds_backup.cli")

# --help grouped as download's is.
SECTIONS = (
    ("What to fetch", ("--offset", "--links-file")),
    (
        "Transfer",
        (
            "--split",
            "--max-connections",
            "--chunk-size",
            "--window",
            "--limit-rate",
            "--retries",
            "--stall-timeout",
            "--expiry-margin",
        ),
    ),
    ("Checks", ("--md5-check",)),
    ("Output", ("--progress",)),
    ("API", API_OPTIONS),
)


@click.command(
    cls=SectionedCommand,
    sections=SECTIONS,
    common=("--offset", "--window", "--limit-rate", "--links-file", "--region", "--project-id"),
    example=("rds-backup cat BACKUP_ID NAME.qp | xbstream -x -C /restore",),
)
@click.argument("backup_id", type=RdsId("backup"))
@click.argument("name")
@api_options
@links_file_option
@retries_option("the stream fails")
@stall_timeout_option
@expiry_margin_option
@limit_rate_option
@split_option("Connections to start with (more are opened while each is slow).")
@max_connections_option("The most connections at once.")
@chunk_size_option("Range size, e.g. 4M (default: the window over twice the connections).")
@click.option(
    "--window",
    type=ByteSize(minimum=1024 * 1024),
    default="64M",
    show_default=True,
    show_envvar=True,
    help="Bytes fetched ahead of the consumer at most: the bound on memory.",
)
@click.option(
    "--offset",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    show_envvar=True,
    help="Start at this byte (to resume an interrupted stream into a file).",
)
@md5_check_option(
    "Check the stream's MD5 against an ETag that is one (on by default).", show_default=False
)
@progress_option("Progress on stderr: bars at a terminal (auto), log lines, or nothing.")
@click.pass_obj
def cat(
    g: Globals,
    backup_id: str,
    name: str,
    links_file: str | None,
    split: int,
    max_connections: int,
    chunk_size: int | None,
    window: int,
    offset: int,
    limit_rate: int | None,
    retries: int,
    stall_timeout: float,
    expiry_margin: float,
    md5_check: bool,
    progress_mode: Literal["auto", "tty", "log", "quiet"],
    api: ApiSettings,
) -> int:
    """Write one file of BACKUP_ID to stdout, in order, fetched in parallel.

    For a restore with no second copy on disk, e.g.
    rds-backup cat BACKUP_ID NAME | xbstream -x -C /var/lib/mysql-restore
    """
    from downloader.download import TransportConfig, make_session
    from downloader.engine.resolver import Fetch, LinkResolver
    from downloader.engine.stream import StreamConfig, stream_file

    if chunk_size is not None and chunk_size > window:
        raise UsageError("--chunk-size cannot exceed --window")
    if sys.stdout is None:
        # Started with stdout closed (``>&-``): the stream has nowhere to go, and fd 1 may
        # soon name a socket or a file this process opens.
        raise UsageError("stdout is closed: pipe the stream into a program or a file")
    if sys.stdout.isatty():
        raise UsageError("stdout is a terminal: pipe the stream into a program or a file")
    cfg = StreamConfig(
        offset=offset,
        split=min(split, max_connections),
        connections=max_connections,
        chunk_size=chunk_size,
        window=window,
        retries=retries,
        limit_rate=limit_rate,
        check_md5=md5_check,
    )
    transport = TransportConfig(
        stall_timeout=stall_timeout,
        ca_bundle=api.ca_bundle,
        expiry_margin=expiry_margin,
    )
    g = g.quiet_for(progress_mode)
    reporter = make_reporter(mode="quiet" if g.quiet else progress_mode, interval=30.0)
    if isinstance(reporter, TerminalReporter):
        configure_logging(fmt=g.log_format, level=g.log_level, quiet=g.quiet, tqdm_aware=True)
    out_fd = sys.stdout.fileno()

    async def go(listing: FileListing, fetch: Fetch | None) -> object:
        bf = _pick(listing, name, backup_id)
        resolver = LinkResolver(listing, fetch, margin=transport.expiry_margin)
        async with make_session(transport, max_connections) as session:
            return await stream_file(
                bf, cfg, out_fd=out_fd, resolver=resolver, session=session, reporter=reporter
            )

    async def main() -> object:
        if links_file:
            from downloader.api.parse import load_links_file

            log.info("using saved links; links cannot be renewed")
            return await go(load_links_file(links_file), None)
        async with open_client(api) as client:

            async def fetch() -> FileListing:
                return await client.show_backup_files(backup_id)

            return await go(await fetch(), fetch)

    try:
        result = run_async(main)
    finally:
        reporter.close()
    from downloader.engine.stream import StreamResult
    from downloader.results import SERVER_CHECKSUM

    assert isinstance(result, StreamResult)
    rate = result.written / result.seconds if result.seconds > 0 else None
    check = (
        "checked against the object store's checksum"
        if result.integrity == SERVER_CHECKSUM
        else "size-only: the object store gives no checksum of these bytes to compare with"
    )
    if result.content is not None:
        check += f"; content {result.content.status}: {result.content.detail()}"
    log.info(
        "%s: %s streamed in %.1f s (%s), %d retries; %s",
        printable(result.name),
        format_size(result.written),
        result.seconds,
        format_rate(rate),
        result.retries,
        check,
    )
    return 0


def _pick(listing: FileListing, name: str, backup_id: str) -> BackupFile:
    names = [f.name for f in listing.files]
    for f in listing.files:
        if f.name == name:
            return f
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(printable(c) for c in close)}?" if close else ""
    raise UsageError(
        f"backup {printable(backup_id)} has no file {printable(name)!r}{hint} "
        f"(rds-backup files {printable(backup_id)} lists them)"
    )
