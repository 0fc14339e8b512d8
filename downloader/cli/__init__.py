"""The ``rds-backup`` command line: options -> configuration -> library calls.

Only this package prints errors and chooses exit codes, at one catch point
(:func:`downloader.cli.runner.run_cli`). Every option can also be set through an
``RDS_BACKUP_<OPTION>`` environment variable (``--help`` shows each one), so cron entries stay
short. Secrets are read from the environment or the SDK credentials file only, never from a
flag.

Exit codes: 0 all done; 1 some files failed; 2 usage error; 3 authentication or API error;
4 verification failed; 5 the output folder is locked by another run; 130/143 interrupted.

Modules: ``app`` (the group), ``lazy`` (its commands, each imported only when it runs),
``options`` (shared options),
``paramtypes`` (their parameter types), ``runner``
(event loop, signals, the catch point), ``render`` (what gets printed), and one ``cmd_*``
module per command group.

May import: everything in ``downloader``.
"""

from __future__ import annotations

from .app import cli
from .runner import run_cli

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``rds-backup``); exits with the command's exit code."""
    run_cli(cli, argv)
