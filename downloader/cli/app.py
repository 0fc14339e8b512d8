"""The ``rds-backup`` command group: global options, and every command attached to it."""

from __future__ import annotations

import logging
import os
from typing import Literal

import click

from downloader import __version__
from downloader.cli.logsetup import configure_logging

from .cmd_cat import cat
from .cmd_download import download
from .cmd_listing import backups, files
from .cmd_sim import demo, simulate
from .cmd_sync import sync
from .cmd_verify import verify
from .options import Globals, name_env_vars

__all__ = ["cli"]

log = logging.getLogger("rds_backup.cli")


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
    }
)
@click.version_option(__version__, prog_name="rds-backup")
@click.option("--debug", is_flag=True, help="Verbose logs and tracebacks (secrets redacted).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    show_envvar=True,
    help="Log lines as text or one JSON object per line.",
)
@click.option("--quiet", "-q", is_flag=True, show_envvar=True, help="Print only errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, log_format: Literal["text", "json"], quiet: bool) -> None:
    """Resumable, parallel downloader for Huawei Cloud RDS backups.

    Credentials come from the environment, as Huawei's SDK reads them:
    HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (optionally HUAWEICLOUD_SDK_SECURITY_TOKEN),
    the SDK credentials file (~/.huaweicloud/credentials), RDS_BACKUP_AUTH_TOKEN, or IAM
    password login (RDS_BACKUP_IAM_USER, RDS_BACKUP_IAM_PASSWORD, RDS_BACKUP_IAM_DOMAIN).

    Exit codes: 0 done; 1 some files failed (run again); 2 usage error (also a folder
    that holds another backup: one folder per backup); 3 authentication or API error;
    4 verification failed; 5 output folder locked; 6 the output folder cannot take the
    files (free space, read-only, permissions: fix it, then run again); 130/143
    interrupted.
    """
    g = ctx.obj = Globals(debug=debug, log_format=log_format, quiet=quiet)
    configure_logging(fmt=g.log_format, level=g.log_level, quiet=g.quiet)
    for old, new in _RENAMED_ENV.items():
        if old in os.environ:
            log.warning("%s is the old name of %s: rename it (the old name still works)", old, new)


for _command in (download, sync, cat, files, backups, verify, simulate, demo):
    cli.add_command(_command)
# Each option's variable is set explicitly (click's auto_envvar_prefix would name them after
# the command and the Python parameter, RDS_BACKUP_DOWNLOAD_DATABASES, not as documented).
_RENAMED_ENV = name_env_vars(cli)
