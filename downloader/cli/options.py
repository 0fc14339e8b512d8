"""Options shared by several commands (each declared once, with the help text every command
shows), the engine and transport settings they make, and the naming of their
``RDS_BACKUP_<OPTION>`` environment variables. Their parameter types are in
:mod:`~downloader.cli.paramtypes`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from downloader.api.factory import ApiSettings
from downloader.cli.logsetup import configure_logging

from .paramtypes import ByteRate, ByteSize, CaBundle, FiniteFloatRange, MetricsPath, NonEmptyPath

if TYPE_CHECKING:
    from downloader.download import TransportConfig
    from downloader.engine.core import EngineConfig

__all__ = [
    "ENV_PREFIX",
    "Globals",
    "api_options",
    "env_name",
    "name_env_vars",
    "option_env_name",
    "output_options",
    "transfer_configs",
]

log = logging.getLogger("rds_backup.cli")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

ENV_PREFIX = "RDS_BACKUP"


def env_name(option: str) -> str:
    """``ENDPOINT`` -> ``RDS_BACKUP_ENDPOINT``."""
    return f"{ENV_PREFIX}_{option}"


@dataclass(frozen=True, slots=True)
class Globals:
    """The group's options, handed to the commands that need them (``ctx.obj``)."""

    debug: bool = False
    log_format: Literal["text", "json"] = "text"
    quiet: bool = False

    @property
    def log_level(self) -> str:
        return "debug" if self.debug else "info"

    def quiet_for(self, progress_mode: str) -> Globals:
        """``--progress quiet`` is ``--quiet`` for the run: errors only, nothing at all on
        success (no INFO lines, no summary)."""
        if self.quiet or progress_mode != "quiet":
            return self
        quiet = replace(self, quiet=True)
        configure_logging(fmt=quiet.log_format, level=quiet.log_level, quiet=True)
        return quiet


# --------------------------------------------------------------------------- option bundles


def api_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options that reach the RDS API; the command receives them as ``api: ApiSettings``."""

    @functools.wraps(f)
    def with_settings(*args: Any, **kwargs: Any) -> Any:
        settings = ApiSettings(
            endpoint=kwargs.pop("endpoint"),
            region=kwargs.pop("region"),
            project_id=kwargs.pop("project_id"),
            iam_endpoint=kwargs.pop("iam_endpoint"),
            ca_bundle=kwargs.pop("ca_bundle"),
            api_rate=kwargs.pop("api_rate"),
            api_timeout=kwargs.pop("api_timeout"),
        )
        return f(*args, api=settings, **kwargs)

    opts = [
        click.option(
            "--endpoint",
            envvar=env_name("ENDPOINT"),
            show_envvar=True,
            help="RDS API endpoint URL (private endpoints, the simulator); overrides --region.",
        ),
        click.option(
            "--region",
            envvar=[env_name("REGION"), "HUAWEICLOUD_SDK_REGION"],
            show_envvar=True,
            help="Huawei Cloud region id, e.g. ap-southeast-3 (Singapore); any case.",
        ),
        click.option(
            "--project-id",
            envvar=[env_name("PROJECT_ID"), "HUAWEICLOUD_SDK_PROJECT_ID"],
            show_envvar=True,
            help="Project id (else from the SDK credentials file or the IAM token).",
        ),
        click.option(
            "--iam-endpoint",
            envvar=env_name("IAM_ENDPOINT"),
            show_envvar=True,
            help="IAM endpoint for password login (default: from --region or "
            "HUAWEICLOUD_SDK_IAM_ENDPOINT).",
        ),
        click.option(
            "--ca-bundle",
            type=CaBundle(),
            envvar=env_name("CA_BUNDLE"),
            show_envvar=True,
            help="PEM file of CA certificates to trust (private CAs).",
        ),
        click.option(
            "--api-rate",
            type=click.IntRange(1, 6000),
            default=50,
            show_default=True,
            envvar=env_name("API_RATE"),
            show_envvar=True,
            help="Most RDS API calls per minute this run makes (RDS allows 60 "
            "per user; leave room for concurrent runs).",
        ),
        click.option(
            "--api-timeout",
            type=FiniteFloatRange(1),
            default=120.0,
            show_default=True,
            envvar=env_name("API_TIMEOUT"),
            show_envvar=True,
            help="Bound, in seconds, on one API call including its retries.",
        ),
    ]
    for opt in reversed(opts):
        with_settings = opt(with_settings)
    return with_settings


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``: a machine-readable report on stdout instead of text."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        envvar=env_name("JSON"),
        show_envvar=True,
        help="Print a machine-readable report on stdout.",
    )(f)


def option_env_name(option: click.Option) -> str:
    """``--chunk-size`` -> ``RDS_BACKUP_CHUNK_SIZE``: the long name, not the Python one
    (``--database`` fills ``databases``; its variable is still ``RDS_BACKUP_DATABASE``)."""
    long = next((o for o in option.opts if o.startswith("--")), option.opts[0])
    return env_name(long.lstrip("-").replace("-", "_").upper())


def _env_list(envvar: str | Sequence[str] | None) -> list[str]:
    if envvar is None:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def name_env_vars(command: click.Command) -> dict[str, str]:
    """Give every option of ``command`` the variable named by :func:`option_env_name` (first,
    before any SDK name it also reads), shown in ``--help``. Only the command's own options:
    a group's commands are named one by one as they are loaded (:mod:`~downloader.cli.lazy`).

    Earlier versions named some variables after the Python parameter (``RDS_BACKUP_DATABASES``
    for ``--database``); those old names are still read, after the new one, so a cron entry
    keeps its meaning. Returns ``{old: new}`` for a warning when one is set."""
    renamed: dict[str, str] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or not param.expose_value or not param.name:
            continue  # --help and --version: actions, not settings
        name = option_env_name(param)
        names = _env_list(param.envvar)
        if not names:
            old = env_name(param.name.upper())
            if old != name:
                names = [old]
                renamed[old] = name
                param.help = f"{param.help or ''} The second variable is its old name.".strip()
        names = [name, *(n for n in names if n != name)]
        param.envvar = names[0] if len(names) == 1 else names
        param.show_envvar = True
    return renamed


# --------------------------------------------------------------------------- shared options
# Declared once, applied by every command that takes them (each use makes its own Option).

links_file_option = click.option(
    "--links-file",
    type=NonEmptyPath(allow_dash=True, dir_okay=False),
    show_envvar=True,
    help="Use a saved backup-files answer (JSON; - for stdin) instead of the API. "
    "Links cannot be renewed then.",
)
stall_timeout_option = click.option(
    "--stall-timeout",
    type=FiniteFloatRange(0.1),
    default=30.0,
    show_default=True,
    show_envvar=True,
    help="Abort a connection that sends no byte for this long.",
)
expiry_margin_option = click.option(
    "--expiry-margin",
    type=FiniteFloatRange(0),
    default=60.0,
    show_default=True,
    show_envvar=True,
    help="Renew links this many seconds before link_expired_time.",
)
limit_rate_option = click.option(
    "--limit-rate",
    type=ByteRate(),
    show_envvar=True,
    help="Cap the total download rate, e.g. 50M (bytes/s; K, M, G = 1024^n).",
)

metrics_file_option = click.option(
    "--metrics-file",
    type=MetricsPath(),
    show_envvar=True,
    help="Write Prometheus metrics to this file at the end of every run (atomically, for "
    "node_exporter's textfile collector).",
)


def retries_option(fails: str) -> Decorator:
    """``--retries``; ``fails`` says what gives up once they are spent."""
    return click.option(
        "--retries",
        type=click.IntRange(0, 100),
        default=5,
        show_default=True,
        show_envvar=True,
        help=f"Retries of one range in a row before {fails}.",
    )


# The options of download and sync (and some of cat's); ``text`` is the help of a command
# whose option means something of its own (a backup's files, one stream's connections).


def output_folder_option(text: str) -> Decorator:
    """``-o/--output``: the folder the run writes into (required)."""
    return click.option(
        "-o",
        "--output",
        type=NonEmptyPath(file_okay=False, path_type=Path),
        required=True,
        show_envvar=True,
        help=text,
    )


def jobs_option(text: str) -> Decorator:
    """``-j/--jobs``: files downloaded at once."""
    return click.option(
        "-j",
        "--jobs",
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        show_envvar=True,
        help=text,
    )


def split_option(text: str = "Connections per file while other files wait.") -> Decorator:
    """``-x/--split``: connections per file."""
    return click.option(
        "-x",
        "--split",
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        show_envvar=True,
        help=text,
    )


def max_connections_option(text: str) -> Decorator:
    """``--max-connections``: the run's connection budget."""
    return click.option(
        "--max-connections",
        type=click.IntRange(1, 256),
        default=32,
        show_default=True,
        show_envvar=True,
        help=text,
    )


def chunk_size_option(
    text: str = "Range size, e.g. 16M (default: chosen from each file's size).",
) -> Decorator:
    """``--chunk-size``: the size of one ranged GET."""
    return click.option("--chunk-size", type=ByteSize(), show_envvar=True, help=text)


connect_timeout_option = click.option(
    "--connect-timeout",
    type=FiniteFloatRange(0.1),
    default=15.0,
    show_default=True,
    show_envvar=True,
    help="Seconds to connect.",
)
preallocate_option = click.option(
    "--preallocate/--no-preallocate",
    default=True,
    show_default=True,
    show_envvar=True,
    help="Reserve disk space for each file up front.",
)


def md5_check_option(text: str, *, show_default: bool = True) -> Decorator:
    """``--md5-check/--no-md5-check``, on by default."""
    return click.option(
        "--md5-check/--no-md5-check",
        "md5_check",
        default=True,
        show_default=show_default,
        show_envvar=True,
        help=text,
    )


def sha256_option(text: str) -> Decorator:
    """``--sha256``: also record each file's SHA-256."""
    return click.option("--sha256", is_flag=True, show_envvar=True, help=text)


def insecure_links_option(text: str) -> Decorator:
    """``--insecure-links``: download links without TLS verification, logged."""
    return click.option("--insecure-links", is_flag=True, show_envvar=True, help=text)


def wait_lock_option(text: str) -> Decorator:
    """``--wait-lock``: wait for the run holding the lock instead of exiting."""
    return click.option("--wait-lock", is_flag=True, show_envvar=True, help=text)


def progress_option(
    text: str, choices: Sequence[str] = ("auto", "tty", "log", "quiet"), default: str = "auto"
) -> Decorator:
    """``--progress``, received as ``progress_mode``."""
    return click.option(
        "--progress",
        "progress_mode",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        show_envvar=True,
        help=text,
    )


def progress_interval_option(text: str) -> Decorator:
    """``--progress-interval``: seconds between progress lines."""
    return click.option(
        "--progress-interval",
        type=FiniteFloatRange(1),
        default=30.0,
        show_default=True,
        show_envvar=True,
        help=text,
    )


def transfer_configs(
    output: Path, api: ApiSettings, params: Mapping[str, Any]
) -> tuple[EngineConfig, TransportConfig]:
    """The engine's and the links' transport settings from the transfer options ``download``
    and ``sync`` share (``params``: the command's, as click parsed them); ``backup_id`` is
    left for each run to fill in. Logs the warning ``--insecure-links`` owes."""
    from downloader.download import TransportConfig
    from downloader.engine.core import EngineConfig

    insecure = bool(params["insecure_links"])
    if insecure:
        log.warning("--insecure-links: TLS certificates of download links are NOT verified")
    engine = EngineConfig(
        out_dir=output,
        backup_id="",
        jobs=params["jobs"],
        per_file=params["split"],
        connections=params["max_connections"],
        chunk_size=params["chunk_size"],
        retries=params["retries"],
        limit_rate=params["limit_rate"],
        preallocate=params["preallocate"],
        check_md5=params["md5_check"],
        sha256=params["sha256"],
        recheck=params.get("recheck", False),  # download's only
    )
    transport = TransportConfig(
        connect_timeout=params["connect_timeout"],
        stall_timeout=params["stall_timeout"],
        verify=not insecure,
        ca_bundle=api.ca_bundle,
        expiry_margin=params["expiry_margin"],
    )
    return engine, transport
