"""Options shared by several commands, the parameter types behind them, and the naming of
their ``RDS_BACKUP_<OPTION>`` environment variables."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from downloader.api.factory import ApiSettings, load_ca_bundle
from downloader.errors import UsageError
from downloader.textfmt import parse_size

__all__ = [
    "ENV_PREFIX",
    "ByteRate",
    "ByteSize",
    "CaBundle",
    "FiniteFloatRange",
    "Globals",
    "NonEmptyPath",
    "api_options",
    "env_name",
    "name_env_vars",
    "option_env_name",
    "output_options",
]

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


# --------------------------------------------------------------------------- parameter types


if TYPE_CHECKING:
    _IntType = click.ParamType[int]  # generic in newer click releases only
else:
    _IntType = click.ParamType


GIB = 1024**3


def _size_text(n: int) -> str:
    """4294967296 -> ``4G``: a bound as the user would write it."""
    for unit, scale in (("G", GIB), ("M", 1024**2), ("K", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


class ByteSize(_IntType):
    """``16M`` -> 16777216 (K, M, G are powers of 1024; ``MiB``, ``MB`` and ``/s`` are read
    the same), at least ``minimum`` and at most ``maximum``. With ``zero_ok``, ``0`` (or
    nothing) gives 0: "no limit" for options that say so."""

    name = "size"
    # A range or a window held in memory: past this a value is a typo, not a setting.
    default_maximum = 4 * GIB
    unit = ""  # after a bound in a message

    def __init__(
        self, *, minimum: int = 1024, maximum: int | None = None, zero_ok: bool = False
    ) -> None:
        self.minimum = minimum
        self.maximum = self.default_maximum if maximum is None else maximum
        self.zero_ok = zero_ok

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        return "TEXT"  # --help as it was when these options took plain text

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        if self.zero_ok and text.strip() in ("", "0"):
            return 0
        try:
            n = parse_size(text)
        except (ValueError, OverflowError):  # OverflowError: more digits than a float holds
            self.fail(
                f"invalid {self.name} {text!r}: use a number with an optional K, M or G",
                param,
                ctx,
            )
        if n < self.minimum:
            self.fail(
                f"{self.name} {text!r} is too low: at least {self.minimum // 1024}K", param, ctx
            )
        if n > self.maximum:
            self.fail(
                f"{self.name} {text!r} is too high: at most {_size_text(self.maximum)}{self.unit}",
                param,
                ctx,
            )
        return n


class ByteRate(ByteSize):
    """Bytes per second, written like a size: ``50M`` (a trailing ``/s`` is fine)."""

    name = "rate"
    default_maximum = 100 * GIB  # faster than any network this runs over
    unit = "/s"


class FiniteFloatRange(click.FloatRange):
    """A ``FloatRange`` that refuses ``nan`` and ``inf`` (which pass any range check, or
    mean "never" where a number of seconds is expected)."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return float(rv)


class NonEmptyPath(click.Path):
    """A ``click.Path`` that refuses an empty string (``-o ''`` would otherwise mean the
    current folder)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if os.fspath(value) in ("", b""):
            self.fail("an empty path is not allowed.", param, ctx)
        return super().convert(value, param, ctx)


class CaBundle(NonEmptyPath):
    """A PEM file of CA certificates, loaded as the option is parsed: a wrong file is a
    usage error naming it, not an OpenSSL message once the run has started."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        try:
            load_ca_bundle(os.fsdecode(path))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)
        return path


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


def name_env_vars(group: click.Group) -> dict[str, str]:
    """Give every option of the group and of its commands the variable named by
    :func:`option_env_name` (first, before any SDK name it also reads), shown in ``--help``.

    Earlier versions named some variables after the Python parameter (``RDS_BACKUP_DATABASES``
    for ``--database``); those old names are still read, after the new one, so a cron entry
    keeps its meaning. Returns ``{old: new}`` for a warning when one is set."""
    renamed: dict[str, str] = {}
    for command in (group, *group.commands.values()):
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
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    show_envvar=True,
    help="Write Prometheus metrics to this file at the end of every run (atomically, for "
    "node_exporter's textfile collector).",
)


def retries_option(fails: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--retries``; ``fails`` says what gives up once they are spent."""
    return click.option(
        "--retries",
        type=click.IntRange(0, 100),
        default=5,
        show_default=True,
        show_envvar=True,
        help=f"Retries of one range in a row before {fails}.",
    )
