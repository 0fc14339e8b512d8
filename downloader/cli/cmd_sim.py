"""``rds-backup simulate`` and ``rds-backup demo``: the built-in simulator, served or
downloaded from."""

from __future__ import annotations

import asyncio
import errno
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from downloader.api.factory import ApiSettings, open_client
from downloader.cli.logsetup import configure_logging
from downloader.errors import Interrupted, UsageError, VerificationError
from downloader.models import FileListing
from downloader.progress import TerminalReporter, make_reporter

from .paramtypes import ByteRate, FiniteFloatRange, NonEmptyPath
from .render import finish_run
from .runner import run_async

if TYPE_CHECKING:
    from downloader.download import RunReport

__all__ = ["demo", "simulate"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8700,
    show_default=True,
    help="Port (0: any free port).",
)
@click.option("--demo-data", is_flag=True, help="Serve the large demo backup as well.")
@click.option(
    "--link-lifetime",
    type=FiniteFloatRange(1),
    default=600.0,
    show_default=True,
    help="Seconds the presigned links live.",
)
def simulate(host: str, port: int, demo_data: bool, link_lifetime: float) -> None:
    """Serve a local Huawei RDS API + IAM + object store until Ctrl-C."""
    from downloader.sim import Simulator, default_catalog, demo_catalog

    async def main() -> None:
        catalog = default_catalog() + (demo_catalog() if demo_data else [])
        sim = Simulator(catalog=catalog)
        sim.faults.link_lifetime = link_lifetime
        try:
            await sim.start(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise UsageError(
                f"{host}:{port} is in use (another simulator?): stop it, or take any free "
                "port with --port 0"
            ) from exc
        try:
            click.echo(sim.describe())
            click.echo("\nServing until Ctrl-C.")
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    try:
        run_async(main)
    except Interrupted:
        click.echo("simulator stopped", err=True)


@click.command()
@click.option(
    "-o",
    "--output",
    type=NonEmptyPath(file_okay=False, path_type=Path),
    default=Path("rds-backup-demo"),
    show_default=True,
    help="Output folder.",
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(["auto", "tty", "log", "quiet"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--link-lifetime",
    type=FiniteFloatRange(1),
    default=3.0,
    show_default=True,
    help="Seconds the simulated links live (short, to show link renewal).",
)
@click.option(
    "--wan-rate",
    type=ByteRate(zero_ok=True),
    default="2M",
    show_default=True,
    help="Per-connection rate cap of the simulated object store, as over a real network "
    "(0: loopback speed).",
)
def demo(
    output: Path,
    progress_mode: Literal["auto", "tty", "log", "quiet"],
    link_lifetime: float,
    wan_rate: int,
) -> int:
    """Download a sample backup from a built-in simulator, then check every byte."""
    from downloader.disk.hashing import hash_file
    from downloader.download import Selection, TransportConfig, run_download
    from downloader.engine.core import EngineConfig
    from downloader.sim import Simulator, demo_catalog

    reporter = make_reporter(mode=progress_mode, interval=5.0)
    if isinstance(reporter, TerminalReporter):
        configure_logging(fmt="text", level="info", tqdm_aware=True)

    async def main() -> tuple[RunReport, FileListing, dict[str, str]]:
        catalog = demo_catalog()
        backup = catalog[0]
        sim = Simulator(catalog=catalog)
        sim.faults.link_lifetime = link_lifetime
        sim.faults.throttle_bps = wan_rate or None
        await sim.start("127.0.0.1", 0)
        try:
            click.echo(
                f"simulator at {sim.endpoint}; backup {backup.id} "
                f"({backup.engine}, {len(backup.files)} files)",
                err=True,
            )
            # The simulator allows what RDS allows: 60 calls a minute.
            settings = ApiSettings(endpoint=sim.endpoint, project_id=sim.project_id, api_rate=60)
            async with open_client(settings, env=sim.env()) as client:

                async def fetch() -> FileListing:
                    return await client.show_backup_files(backup.id)

                listing = await fetch()
                report = await run_download(
                    EngineConfig(out_dir=output, backup_id=backup.id),
                    listing,
                    fetch=fetch,
                    selection=Selection(),
                    transport=TransportConfig(expiry_margin=2.0),
                    reporter=reporter,
                    engine_name=backup.engine,
                )
            expected = {f.name: sim.expected_sha256(backup.id, f.name) for f in backup.files}
            return report, listing, expected
        finally:
            await sim.stop()

    try:
        report, listing, expected = run_async(main)
    finally:
        reporter.close()
    bad = []
    for name, digest in expected.items():
        try:
            got = hash_file(output / name, sha256=True).sha256_hex()
        except FileNotFoundError:
            bad.append(f"{name}: missing")
            continue
        if got != digest:
            bad.append(f"{name}: content differs from the simulator's")
    if not bad and not report.failed:
        click.echo(
            f"demo: all {len(expected)} files byte-exact (SHA-256 checked against the "
            f"simulator) in {output}",
            err=True,
        )
    code = finish_run(
        report,
        listing,
        reporter,
        output=output,
        as_json=False,
        quiet=False,
        engine_name=demo_catalog()[0].engine,
    )
    if code:
        return code
    for line in bad:
        click.echo(f"demo: {line}", err=True)
    if bad:
        return VerificationError.exit_code
    click.echo(f"next: {try_next()}", err=True)
    return 0


def try_next() -> str:
    """The command to try after the demo, runnable as printed: ``scripts/demo.sh`` installs
    into a virtual environment that is not on PATH, and a newcomer would type
    ``rds-backup`` and get "command not found"."""
    command = "rds-backup simulate   # serves the simulator and prints what to run against it"
    if shutil.which("rds-backup") or sys.prefix == sys.base_prefix:
        return command
    venv = os.path.relpath(sys.prefix)
    if venv.startswith(".."):
        venv = sys.prefix
    return f". {shlex.quote(venv)}/bin/activate && {command}"
