"""The ``rds-backup`` command group: global options, and every command attached to it.

Each command's module is imported only when that command is looked up (it runs, or its help
is shown; :mod:`~downloader.cli.lazy`): start-up pays for one command's imports, not all.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import click

from downloader import __version__
from downloader.cli.logsetup import configure_logging

from .lazy import LazyCommands
from .options import Globals, name_env_vars

__all__ = ["cli"]

log = logging.getLogger("rds_backup.cli")

# name -> "module:attribute", in the order --help lists them (click sorts them by name).
COMMANDS = {
    "download": "downloader.cli.cmd_download:download",
    "sync": "downloader.cli.cmd_sync:sync",
    "cat": "downloader.cli.cmd_cat:cat",
    "instances": "downloader.cli.cmd_listing:instances",
    "files": "downloader.cli.cmd_listing:files",
    "backups": "downloader.cli.cmd_listing:backups",
    "verify": "downloader.cli.cmd_verify:verify",
    "simulate": "downloader.cli.cmd_sim:simulate",
    "demo": "downloader.cli.cmd_sim:demo",
}


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


# Each option's variable is set explicitly (click's auto_envvar_prefix would name them after
# the command and the Python parameter, RDS_BACKUP_DOWNLOAD_DATABASES, not as documented);
# a command's, when it is loaded. click looks the command up before it calls the group, so
# the warnings above see the old names of the command that runs.
_RENAMED_ENV = name_env_vars(cli)
cli.commands = LazyCommands(COMMANDS, lambda command: _RENAMED_ENV.update(name_env_vars(command)))
