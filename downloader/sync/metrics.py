"""Prometheus metrics of a run, as a text file for node_exporter's textfile collector.

The file is written whole at the end of every run, success or not: to a new temporary name
beside it, fsynced, then renamed over the old one, so the collector never reads half a file.
It holds numbers and instance ids only, never a credential or a link, and is 0644 so that
the collector (usually another user) can read it.

A failed or skipped instance keeps its last success (and its newest mirrored backup's time) from the
previous file, read back here: ``time() - rds_backup_instance_last_success_timestamp_seconds``
then keeps growing until it succeeds again, which is what an alert wants to see. The reader
knows only this module's own output; prometheus_client is not needed at run time.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from downloader.disk import storage

__all__ = [
    "InstanceMetrics",
    "RunMetrics",
    "carry_over",
    "read_previous",
    "render",
    "write_metrics_file",
    "write_run_metrics",
    "write_sync_metrics",
]

PREFIX = "rds_backup"
MAX_PREVIOUS = 16 * 1024 * 1024  # far beyond any fleet's file; a larger one is not ours
FILE_MODE = 0o644

# name suffix -> help text; all gauges.
_RUN = {
    "last_run_timestamp_seconds": "When the last run ended (Unix time).",
    "last_run_success": "1 if the last run succeeded for every instance, else 0.",
    "last_run_duration_seconds": "How long the last run took.",
    "last_run_bytes_downloaded": "Bytes fetched by the last run.",
}
_INSTANCE = {
    "instance_last_run_success": "1 if the instance's backups were mirrored by the last run.",
    "instance_last_success_timestamp_seconds": "When a run last mirrored the instance.",
    "instance_latest_backup_timestamp_seconds": "End time of the newest backup mirrored.",
    "instance_bytes_downloaded": "Bytes fetched for the instance by the last run.",
    "instance_files_failed": "Files of the instance that failed in the last run.",
    "instance_skipped": "1 if the last run skipped the instance: it has no backup yet, or "
    "its status (label) is not ACTIVE and it has none to mirror.",
}
_KEPT = ("instance_last_success_timestamp_seconds", "instance_latest_backup_timestamp_seconds")
_LINE_RE = re.compile(
    rf'^{PREFIX}_(?P<name>[a-z_]+)\{{instance_id="(?P<id>(?:[^"\\]|\\.)*)"\}}\s+(?P<value>\S+)\s*$'
)


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """The run-level numbers: when it ended, whether it succeeded, how long, how much."""

    finished_at: float  # Unix time
    success: bool
    duration: float  # seconds
    bytes_downloaded: int | None = None


@dataclass(frozen=True, slots=True)
class InstanceMetrics:
    """One instance's numbers for this run. ``last_success`` and ``latest_backup`` are Unix
    times, None when not known (a failed instance's come from the previous file)."""

    instance_id: str
    success: bool
    last_success: float | None
    latest_backup: float | None
    bytes_downloaded: int = 0
    files_failed: int = 0
    skipped: bool = False  # not ACTIVE, or no backup yet: nothing to mirror, no failure
    status: str | None = None  # as the instances list gives it


# What an instance id from the API may hold that the exposition format cannot carry raw: a
# carriage return ends the line for Prometheus' parser, and a lone surrogate cannot be
# written as UTF-8 at all.
_UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(value: str) -> str:
    # The exposition format's label escapes (backslash, double quote, line feed), then
    # ``\uXXXX`` for the rest: Prometheus keeps an escape it does not know as it is.
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", value)


def _unescape(value: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m[1]
        if code == "n":
            return "\n"
        return chr(int(code[1:], 16)) if len(code) == 5 else code

    return re.sub(r"\\(u[0-9a-f]{4}|.)", one, value)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value)) if math.isfinite(value) else "NaN"


def _family(name: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} gauge"]
    lines += [f"{PREFIX}_{name}{labels} {_number(v)}" for labels, v in samples]
    return lines


def render(run: RunMetrics, instances: Sequence[InstanceMetrics] = ()) -> str:
    """The exposition text (version 0.0.4) of a run and its instances, sorted by instance."""
    values: dict[str, float | None] = {
        "last_run_timestamp_seconds": run.finished_at,
        "last_run_success": int(run.success),
        "last_run_duration_seconds": run.duration,
        "last_run_bytes_downloaded": run.bytes_downloaded,
    }
    lines: list[str] = []
    for name, help_text in _RUN.items():
        value = values[name]
        if value is not None:
            lines += _family(name, help_text, [("", value)])
    ordered = sorted(instances, key=lambda i: i.instance_id)
    for name, help_text in _INSTANCE.items() if ordered else ():
        samples = []
        for inst in ordered:
            value = _instance_value(inst, name)
            if value is not None:
                labels = f'instance_id="{_escape(inst.instance_id)}"'
                if name == "instance_skipped":
                    labels += f',status="{_escape(inst.status or "")}"'
                samples.append((f"{{{labels}}}", value))
        if samples:
            lines += _family(name, help_text, samples)
    return "\n".join(lines) + "\n"


def _instance_value(inst: InstanceMetrics, name: str) -> float | None:
    return {
        "instance_last_run_success": int(inst.success),
        "instance_last_success_timestamp_seconds": inst.last_success,
        "instance_latest_backup_timestamp_seconds": inst.latest_backup,
        "instance_bytes_downloaded": inst.bytes_downloaded,
        "instance_files_failed": inst.files_failed,
        "instance_skipped": int(inst.skipped),
    }[name]


def parse_previous(text: str) -> dict[str, dict[str, float]]:
    """``{metric suffix: {instance id: value}}`` of the per-instance values worth keeping,
    from a file :func:`render` wrote. Lines it does not know are ignored."""
    out: dict[str, dict[str, float]] = {}
    # Lines end at "\n" only: splitlines() would also split at characters an id may hold.
    for line in text.split("\n"):
        m = _LINE_RE.match(line)
        if m is None or m["name"] not in _KEPT:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        if math.isfinite(value):
            out.setdefault(m["name"], {})[_unescape(m["id"])] = value
    return out


def read_previous(path: Path) -> dict[str, dict[str, float]]:
    """:func:`parse_previous` of the file at ``path``; empty when there is none to read."""
    try:
        # Never waiting: a FIFO put there after the start would block the run (holding
        # ROOT's lock) until someone writes to it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        data = fh.read(MAX_PREVIOUS + 1)
    if len(data) > MAX_PREVIOUS:
        return {}
    return parse_previous(data.decode("utf-8", "replace"))


def carry_over(
    instances: Sequence[InstanceMetrics], previous: Mapping[str, Mapping[str, float]]
) -> list[InstanceMetrics]:
    """Fill what a failed instance does not know this run (its last success, its newest
    mirrored backup) from the previous file. Pure."""
    last = previous.get("instance_last_success_timestamp_seconds", {})
    newest = previous.get("instance_latest_backup_timestamp_seconds", {})
    out = []
    for inst in instances:
        if not inst.success or inst.skipped:
            inst = replace(
                inst,
                last_success=inst.last_success or last.get(inst.instance_id),
                latest_backup=inst.latest_backup or newest.get(inst.instance_id),
            )
        out.append(inst)
    return out


def write_metrics_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`downloader.disk.storage.atomic_write`), 0644
    whatever the umask: the collector must read it."""
    storage.atomic_write(Path(path), text.encode(), mode=FILE_MODE, hidden=True)


def write_run_metrics(
    path: Path,
    *,
    success: bool,
    started_at: float,
    finished_at: float,
    bytes_downloaded: int | None = None,
) -> None:
    """The run-level lines only (for ``download --metrics-file``): the last run's end time,
    success, duration and, when given, bytes fetched. Times are Unix times (``time.time()``).
    Raises OSError when the file cannot be written."""
    run = RunMetrics(
        finished_at=finished_at,
        success=success,
        duration=max(0.0, finished_at - started_at),
        bytes_downloaded=bytes_downloaded,
    )
    write_metrics_file(Path(path), render(run))


def write_sync_metrics(
    path: Path,
    run: RunMetrics,
    instances: Sequence[InstanceMetrics],
    *,
    keep_unlisted: bool = False,
) -> str:
    """A sync run's file (its text returned): run-level lines and one set per instance, a
    failed instance's last success kept from the file being replaced. ``keep_unlisted``:
    the run failed before it knew its instances (the API refused the list, ROOT could not
    be prepared ...), so every instance of the previous file is one that failed in this
    run, its series kept (else the staleness alert of every instance would go silent just
    when nothing was mirrored). Raises OSError when it cannot be written."""
    previous = read_previous(Path(path))
    instances = list(instances)
    if keep_unlisted:
        known = {i.instance_id for i in instances}
        ids = sorted({i for values in previous.values() for i in values} - known)
        instances += [InstanceMetrics(i, False, None, None) for i in ids]
    kept = carry_over(instances, previous)
    text = render(run, kept)
    write_metrics_file(Path(path), text)
    return text
