"""Start-up imports only what the command in hand uses: a command's module is loaded when
that command runs (or shows its help), tqdm only for bars at a terminal, the API client (and
with it aiohttp's API side) only when an API call is made. Checked on the real command line
in a subprocess, from the modules it had loaded when it exited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_folders import saved_links

from downloader.cli import cli
from downloader.disk.storage import MANIFEST_NAME
from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_MANY

OTHER_COMMANDS = (
    "downloader.cli.cmd_sync",
    "downloader.cli.cmd_cat",
    "downloader.cli.cmd_sim",
    "downloader.cli.cmd_listing",
    "downloader.cli.cmd_verify",
)
# What only an API call needs: the client and its HTTP and credential parts.
API_CLIENT = (
    "downloader.api.client",
    "downloader.api.auth",
    "downloader.api.iam",
    "downloader.api.transport",
    "downloader.api.body",
    "downloader.api.credentials",
)


# Runs the command line as ``python -m downloader`` does, and writes every module loaded by
# the time the process exits (``-X importtime`` leaves out modules loaded through importlib).
PROBE = (
    "import atexit, json, runpy, sys; out = sys.argv[1]; "
    "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules)))); "
    "sys.argv = ['rds-backup', *sys.argv[2:]]; "
    "runpy.run_module('downloader', run_name='__main__', alter_sys=True)"
)


def imported(
    args: list[str], env: dict[str, str], tmp_path: Path, stdin: str | None = None
) -> set[str]:
    """Every module ``rds-backup ARGS`` had loaded when it exited (successfully)."""
    report = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = set(json.loads(report.read_text()))
    assert "downloader.cli.app" in names  # the report was read
    return names


def plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}


def test_download_help_loads_download_alone(tmp_path: Path) -> None:
    names = imported(["download", "--help"], plain_env(), tmp_path)
    assert "downloader.cli.cmd_download" in names
    assert not names & {*OTHER_COMMANDS, *API_CLIENT}
    for heavy in ("aiohttp", "tqdm", "downloader.download", "downloader.engine.core"):
        assert heavy not in names, heavy
    assert not any(n.startswith(("downloader.sim", "downloader.sync.run")) for n in names)


def test_the_group_help_still_lists_every_command(tmp_path: Path) -> None:
    """Listing the commands loads them all (their short help), and nothing else."""
    names = imported(["--help"], plain_env(), tmp_path)
    assert {"downloader.cli.cmd_download", *OTHER_COMMANDS} <= names
    assert "downloader.engine.core" not in names
    assert sorted(cli.commands) == sorted(  # type: ignore[attr-defined]
        ["backups", "cat", "demo", "download", "files", "instances", "simulate", "sync", "verify"]
    )


def test_an_unknown_command_is_still_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "downloader", "downlaod"],
        env=plain_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "No such command 'downlaod'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("progress", ["log", "quiet"])
def test_links_file_download_makes_no_api_client_and_no_bars(
    sim_thread: Simulator, tmp_path: Path, progress: str
) -> None:
    """A ``--links-file`` run never calls the API: it imports no API client (nor credentials
    code), and without a terminal no tqdm; the download itself is complete."""
    links = saved_links(sim_thread, MYSQL_MANY)
    out = tmp_path / "out"
    args = ["download", MYSQL_MANY, "-o", str(out), "--links-file", "-", "--progress", progress]
    names = imported(args, plain_env(), tmp_path, stdin=links)
    assert not names & set(API_CLIENT), names & set(API_CLIENT)
    assert "tqdm" not in names
    assert not names & set(OTHER_COMMANDS)
    # The object bytes travel through libcurl: aiohttp is the API's and the simulator's.
    assert "aiohttp" not in names and "pycurl" in names
    assert json.loads((out / MANIFEST_NAME).read_text())["backup_id"] == MYSQL_MANY
    for f in sim_thread.backups[MYSQL_MANY].files:
        assert (out / f.name).read_bytes() == sim_thread.expected_bytes(MYSQL_MANY, f.name)
