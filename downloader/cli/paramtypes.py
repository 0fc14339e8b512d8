"""The parameter types behind the commands' options: sizes and rates written like ``16M``,
finite numbers of seconds, non-empty paths, a CA bundle loaded as it is parsed."""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from downloader.api.factory import load_ca_bundle
from downloader.errors import UsageError
from downloader.text.fmt import parse_size

__all__ = [
    "GIB",
    "ByteRate",
    "ByteSize",
    "CaBundle",
    "FiniteFloatRange",
    "NonEmptyPath",
    "RdsId",
]

if TYPE_CHECKING:
    _IntType = click.ParamType[int]  # generic in newer click releases only
    _StrType = click.ParamType[str]
else:
    _IntType = click.ParamType
    _StrType = click.ParamType


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


class MetricsPath(NonEmptyPath):
    """The metrics file: absent, or a regular file. Anything else is refused as the option
    is parsed: a FIFO would block the run's reading of the previous file (forever, holding
    ROOT's lock), a link or a device is not ours to replace."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path
        except OSError as exc:
            self.fail(f"{os.fsdecode(path)}: {exc.strerror}", param, ctx)
        if not stat.S_ISREG(st.st_mode):
            what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            self.fail(f"{os.fsdecode(path)} is {what}", param, ctx)
        return path


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


# RDS ids are 32 hex digits and a suffix naming what they are: ``in01``..``in04`` an
# instance (by engine), ``br01``.. a backup (the console and the API show both).
_INSTANCE_ID = re.compile(r"^[0-9a-f]{32}in\d\d$")
_BACKUP_ID = re.compile(r"^[0-9a-f]{32}br\d\d$")


class RdsId(_StrType):
    """One RDS id of a ``kind`` ("backup" or "instance"), refused in words when it is two
    ids in one value (``a,b``, ``a b``) or an id of the other kind, naming where it came
    from (the argument, the option, or its ``RDS_BACKUP_*`` variable)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"{kind} id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        where = _source(param, ctx)
        if len(text.replace(",", " ").split()) > 1:
            self.fail(f"{where} holds more than one id ({text[:80]!r}): give one", param, ctx)
        other = _BACKUP_ID if self.kind == "instance" else _INSTANCE_ID
        if other.match(text):
            what = "a backup" if self.kind == "instance" else "an instance"
            hint = (
                "give it as --instance-id, and the backup's id here (rds-backup backups "
                "--instance-id ID lists them)"
                if self.kind == "backup"
                else "rds-backup instances lists the instance ids"
            )
            mine = "an instance" if self.kind == "instance" else "a backup"
            self.fail(f"{where} is {what} id, not {mine} id: {hint}", param, ctx)
        return text


def _source(param: click.Parameter | None, ctx: click.Context | None) -> str:
    """Where a parameter's value came from, in the words a user would look for."""
    if param is None or ctx is None or param.name is None:
        return "the id"
    source = ctx.get_parameter_source(param.name)
    envvar = param.envvar if isinstance(param.envvar, str) else None
    if source is click.core.ParameterSource.ENVIRONMENT and envvar:
        return f"the variable {envvar}"
    if isinstance(param, click.Argument):
        return f"the argument {param.human_readable_name}"
    return f"the option {param.opts[0]}"
