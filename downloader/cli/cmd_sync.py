"""``rds-backup sync``: options -> :class:`~downloader.sync.run.SyncConfig` ->
:func:`~downloader.sync.run.run_sync`, then the summary (or JSON) and the exit code."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from downloader.api.factory import ApiSettings, open_client
from downloader.errors import UsageError

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
from .render import echo_json
from .runner import run_async
from .sections import API_OPTIONS, TRANSFER_OPTIONS, SectionedCommand

if TYPE_CHECKING:
    from downloader.sync.plan import Shard
    from downloader.sync.report import SyncReport

    _ShardBase = click.ParamType[Shard]  # generic in newer click releases only
else:
    _ShardBase = click.ParamType

__all__ = ["sync"]

log = logging.getLogger("rds_backup.cli")

SECTIONS = (
    (
        "What to mirror",
        ("--instance-id", "--all-instances", "--backup-type", "--shard"),
    ),
    ("Where", ("--output", "--keep", "--wait-lock", "--preallocate")),
    ("Transfer", ("--parallel-instances", *TRANSFER_OPTIONS)),
    ("Checks", ("--md5-check", "--sha256")),
    (
        "Output",
        (
            "--dry-run",
            "--metrics-file",
            "--metrics-push",
            "--progress",
            "--progress-interval",
            "--json",
        ),
    ),
    ("API", API_OPTIONS),
)


class ShardType(_ShardBase):
    """``K/N`` -> :class:`~downloader.sync.plan.Shard` (1 <= K <= N)."""

    name = "K/N"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Shard:
        from downloader.sync.plan import Shard, parse_shard

        if isinstance(value, Shard):
            return value
        try:
            return parse_shard(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


@click.command(
    cls=SectionedCommand,
    sections=SECTIONS,
    common=(
        "--output",
        "--instance-id",
        "--all-instances",
        "--backup-type",
        "--keep",
        "--shard",
        "--dry-run",
        "--metrics-push",
        "--metrics-file",
        "--json",
    ),
    example=(
        "rds-backup sync --all-instances -o /srv/rds-mirror --keep 7 --metrics-file m.prom",
        "rds-backup sync --all-instances -o /mnt/rds --shard 2/4 --metrics-push http://gw:9091",
    ),
)
@output_folder_option("The mirror's root: each backup goes to ROOT/<instance_id>/<backup_id>/.")
@click.option(
    "--instance-id",
    "instance_ids",
    multiple=True,
    envvar=env_name("INSTANCE_ID"),
    show_envvar=True,
    help="An instance to mirror (repeatable).",
)
@click.option(
    "--all-instances",
    is_flag=True,
    show_envvar=True,
    help="Mirror every instance of the project (read replicas have no backups to mirror).",
)
@click.option(
    "--backup-type",
    "backup_types",
    multiple=True,
    envvar=env_name("BACKUP_TYPE"),
    show_envvar=True,
    type=click.Choice(["auto", "manual", "incremental"]),
    help="Mirror the newest COMPLETED backup of this type (repeatable; default auto).",
)
@click.option(
    "--keep",
    type=click.IntRange(1, 100000),
    show_envvar=True,
    help="After an instance's backups are in place, remove its complete backup folders "
    "beyond the newest N (default: keep everything).",
)
@click.option(
    "--shard",
    type=ShardType(),
    show_envvar=True,
    help="Mirror only the instances with crc32(instance_id) % N == K - 1, so that N "
    "machines split a fleet with no coordination.",
)
@metrics_file_option
@click.option(
    "--metrics-push",
    metavar="URL",
    show_envvar=True,
    help="Push the metrics to this Prometheus Pushgateway at the end of every run (group "
    "job=rds-backup, and shard=K with --shard); a push that fails is a warning.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    show_envvar=True,
    help="Print what would be fetched and removed; fetch, remove and write nothing.",
)
@click.option(
    "--parallel-instances",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    show_envvar=True,
    help="Instances mirrored at once (they share --max-connections and --limit-rate evenly).",
)
@api_options
@retries_option("its file fails")
@stall_timeout_option
@expiry_margin_option
@limit_rate_option
@jobs_option("Files of one backup downloaded at once.")
@split_option()
@max_connections_option("Connection budget of the whole run, all instances together.")
@chunk_size_option()
@connect_timeout_option
@preallocate_option
@md5_check_option("Check the MD5 against ETags that look like one.")
@sha256_option("Also record each file's SHA-256 in the manifests.")
@insecure_links_option(
    "Do not verify TLS certificates of download links. Logged; never the default."
)
@wait_lock_option("Wait for another sync of the same root (and shard) instead of exiting 5.")
@progress_option(
    "Periodic log lines per backup, or errors only.", choices=("log", "quiet"), default="log"
)
@progress_interval_option("Seconds between progress lines.")
@output_options
@click.pass_obj
def sync(
    g: Globals,
    /,
    output: Path,
    instance_ids: tuple[str, ...],
    all_instances: bool,
    backup_types: tuple[str, ...],
    keep: int | None,
    shard: Shard | None,
    metrics_file: Path | None,
    metrics_push: str | None,
    dry_run: bool,
    parallel_instances: int,
    retries: int,
    stall_timeout: float,
    expiry_margin: float,
    limit_rate: int | None,
    jobs: int,
    split: int,
    max_connections: int,
    chunk_size: int | None,
    connect_timeout: float,
    preallocate: bool,
    md5_check: bool,
    sha256: bool,
    insecure_links: bool,
    wait_lock: bool,
    progress_mode: Literal["log", "quiet"],
    progress_interval: float,
    as_json: bool,
    api: ApiSettings,
) -> int:
    """Mirror the newest backups of many instances into ROOT (the nightly job of a fleet).

    Each instance's newest COMPLETED backup of each --backup-type goes to
    ROOT/<instance_id>/<backup_id>/, as `download` writes it; a complete folder is skipped.
    Exit codes: 0 every instance succeeded (or was skipped: no backup yet); 1 any failed
    (each is named); 2 a usage error, or a folder of an instance is a planted link; 3 the
    API refused the credentials for every instance; 5 another sync holds ROOT; 6 ROOT
    cannot take the files (free space, read-only, permissions); 130/143 interrupted.
    """
    from downloader.sync.plan import folder_name_problem
    from downloader.sync.run import SyncConfig, run_sync

    if bool(instance_ids) == all_instances:
        raise UsageError("give --instance-id (repeatable) or --all-instances, one of the two")
    for instance_id in instance_ids:
        problem = folder_name_problem(instance_id)
        if problem is not None:
            raise UsageError(f"--instance-id {instance_id!r} cannot name a folder: {problem}")
    if metrics_file is not None and not metrics_file.parent.is_dir():
        raise UsageError(f"--metrics-file {metrics_file}: its folder does not exist")
    if metrics_push is not None:
        from downloader.sync.push import check_push_url

        metrics_push = check_push_url(metrics_push)
    engine, transport = transfer_configs(output, api, click.get_current_context().params)
    g = g.quiet_for(progress_mode)
    config = SyncConfig(
        root=output,
        engine=engine,
        transport=transport,
        instance_ids=instance_ids,
        backup_types=backup_types or ("auto",),
        keep=keep,
        shard=shard,
        dry_run=dry_run,
        metrics_file=metrics_file,
        metrics_push=metrics_push,
        parallel=parallel_instances,
        wait_lock=wait_lock,
        progress="quiet" if g.quiet else progress_mode,
        progress_interval=progress_interval,
    )

    async def main() -> SyncReport:
        async with open_client(api) as client:
            return await run_sync(config, client)

    report = run_async(main)
    if as_json:
        echo_json(report.to_json())
    else:
        for line in report.plan_lines():
            click.echo(line)  # a dry run's answer: what would be fetched and removed
    if not as_json and (not g.quiet or report.failed):
        for line in report.summary():
            click.echo(line, err=True)
    log.info(
        "sync finished: exit %d, %d instance(s), %d failed, %d bytes fetched",
        report.exit_code,
        len(report.instances),
        len(report.failed),
        report.bytes_fetched,
    )
    return report.exit_code
