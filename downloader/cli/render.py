"""What the commands print: JSON documents, plain tables, and the end of a download run.

Tables and scrubbing come from :mod:`downloader.text.fmt`, which the progress reporters share.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, overload

import click

from downloader.models import FileListing
from downloader.progress import (
    ReporterBase,
    TerminalReporter,
    content_note,
    run_totals,
    size_only_note,
    summary_table,
)
from downloader.text.fmt import format_size, printable, render_table

if TYPE_CHECKING:
    from downloader.chain.run import ChainReport
    from downloader.download import RunReport

__all__ = ["echo_json", "echo_table", "finish_chain", "finish_run", "iso_time", "size_only_note"]

log = logging.getLogger("rds_backup.cli")


def echo_json(data: object) -> None:
    """``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2))


def echo_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A plain table on stdout (no control characters, whatever the API sent)."""
    click.echo(render_table(header, rows))


@overload
def iso_time(when: datetime | None) -> str | None: ...
@overload
def iso_time(when: datetime | None, missing: str) -> str: ...
def iso_time(when: datetime | None, missing: str | None = None) -> str | None:
    """For machines (``--json``): RFC 3339 with the offset the API gave, or ``missing``."""
    return when.isoformat() if when else missing


def local_time(when: datetime | None, missing: str = "-") -> str:
    """For people (tables): the moment in this machine's time zone, with its offset
    (``2024-05-20 18:00:00 +08:00``), or ``missing``."""
    if when is None:
        return missing
    local = when.astimezone()
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


def finish_run(
    report: RunReport,
    listing: FileListing,
    reporter: ReporterBase,
    *,
    output: Path,
    as_json: bool,
    quiet: bool,
    engine_name: str | None = None,
) -> int:
    """Print the run's report (JSON on stdout, or the summary on stderr), log its totals,
    and return its exit code.

    The restore hints go into the JSON and to a terminal (bars shown), not into log output:
    a nightly job would otherwise mail the same recipe every night.
    """
    from downloader.text.nextsteps import next_steps

    dbs: Mapping[str, str | None] = {f.name: f.database_name for f in listing.files}
    rows = reporter.summary_rows(dbs)
    by_name = {o.name for o in report.outcomes}
    rows = [r for r in rows if r.name in by_name] or rows
    hints = (
        next_steps(
            engine_name,
            [o.name for o in report.outcomes],
            str(output),
            databases=dbs,
            backup_names=[f.name for f in listing.files],
        )
        if report.manifest
        else []
    )
    if as_json:
        echo_json({**report.to_json(), "next_steps": hints})
    elif not quiet:
        click.echo(summary_table(rows), err=True)
        click.echo(
            run_totals(
                files=len(report.outcomes),
                failed=len(report.failed),
                bytes_fetched=report.bytes_fetched,
                seconds=report.seconds,
                retries=report.retries,
                resolutions=report.resolutions,
                refusals=report.refusals,
                size_only=report.size_only,
            ),
            err=True,
        )
        if report.size_only:
            click.echo(size_only_note(report.size_only), err=True)
        note = content_note([o.content for o in report.outcomes])
        if note is not None:
            click.echo(note, err=True)
        _echo_manifest_and_steps(report.manifest, hints, reporter)
    log.info(
        "run finished: exit %d, %d files, %d failed, %d bytes fetched, %d retries, "
        "%d re-resolutions, %d links refused, %d size-only",
        report.exit_code,
        len(report.outcomes),
        len(report.failed),
        report.bytes_fetched,
        report.retries,
        report.resolutions,
        report.refusals,
        report.size_only,
    )
    return report.exit_code


def finish_chain(report: ChainReport, reporter: ReporterBase, *, as_json: bool, quiet: bool) -> int:
    """A chain run's report: JSON on stdout, or on stderr one row per backup in chain order
    (each folder's files, size and result), the totals, any failed file, the manifest and,
    at a terminal, the restore steps; returns the run's exit code."""
    from downloader.text.nextsteps import chain_steps

    chain = report.chain
    hints: list[str] = []
    if report.manifest:
        backups = [(r.link.folder, [o.name for o in r.report.outcomes]) for r in report.runs]
        dbs = {
            f"{r.link.folder}/{o.name}": o.database_name
            for r in report.runs
            for o in r.report.outcomes
        }
        hints = chain_steps(
            chain.engine, backups, chain.to_time, str(report.out_dir), databases=dbs
        )
    runs = report.reports
    if as_json:
        echo_json({**report.to_json(), "next_steps": hints})
    elif not quiet:
        rows = []
        for r in report.runs:
            out = r.report.outcomes
            bad = len(r.report.failed)
            done = "already complete" if all(o.skipped for o in out) else "ok"
            rows.append(
                (
                    r.link.folder,
                    local_time(r.link.backup.end_time),
                    str(len(out)),
                    format_size(sum(o.size or 0 for o in out)),
                    f"FAILED ({bad} of {len(out)} files)" if bad else done,
                )
            )
        click.echo(render_table(("BACKUP", "END", "FILES", "SIZE", "RESULT"), rows), err=True)
        click.echo(
            run_totals(
                files=sum(len(r.outcomes) for r in runs),
                failed=report.failed,
                bytes_fetched=report.bytes_fetched,
                seconds=report.seconds,
                retries=sum(r.retries for r in runs),
                resolutions=sum(r.resolutions for r in runs),
                refusals=sum(r.refusals for r in runs),
                size_only=sum(r.size_only for r in runs),
            )
            + f"; {len(runs)} backups to {chain.to_time.isoformat()}",
            err=True,
        )
        for r in report.runs:
            for o in r.report.failed:
                click.echo(printable(f"FAILED {r.link.folder}/{o.name}: {o.detail}"), err=True)
        _echo_manifest_and_steps(report.manifest, hints, reporter)
    log.info(
        "chain run finished: exit %d, %d backups, %d files failed, %d bytes fetched",
        report.exit_code,
        len(runs),
        report.failed,
        report.bytes_fetched,
    )
    return report.exit_code


def _echo_manifest_and_steps(
    manifest: str | None, hints: Sequence[str], reporter: ReporterBase
) -> None:
    """The run's manifest and, at a terminal, the restore steps (on stderr)."""
    if manifest:
        click.echo(printable(f"manifest: {manifest}"), err=True)
    if isinstance(reporter, TerminalReporter):
        for line in hints:
            # Database names come from the API: never raw to the terminal.
            click.echo(printable(line), err=True)
