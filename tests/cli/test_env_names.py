"""Every option's environment variable is ``RDS_BACKUP_`` and its long name (issue 17):
checked over every command, and through a real run against the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from downloader.cli import cli
from downloader.sim import Simulator
from downloader.sim.catalog import SQLSERVER_DB

# Names read as well, after the documented one: the SDK's own, and the old names of options
# whose variable used to follow the Python parameter (kept so cron entries keep working).
ALSO_READ = {
    "--region": ["HUAWEICLOUD_SDK_REGION"],
    "--project-id": ["HUAWEICLOUD_SDK_PROJECT_ID"],
    "--database": ["RDS_BACKUP_DATABASES"],
    "--progress": ["RDS_BACKUP_PROGRESS_MODE"],
}


def _commands() -> list[tuple[str, click.Command]]:
    assert isinstance(cli, click.Group)
    return [("rds-backup", cli), *cli.commands.items()]


def test_every_option_of_every_command_is_named_after_its_long_option() -> None:
    seen = 0
    for command_name, command in _commands():
        for param in command.params:
            if not isinstance(param, click.Option) or not param.expose_value:
                continue  # --help, --version
            long = [o for o in param.opts if o.startswith("--")]
            assert long, (command_name, param.opts)
            expected = "RDS_BACKUP_" + long[0][2:].upper().replace("-", "_")
            envvar = param.envvar
            names = [envvar] if isinstance(envvar, str) else list(envvar or [])
            also = ALSO_READ.get(long[0], [])
            if long[0] == "--backup-type" and command_name == "download":
                also = ["RDS_BACKUP_BACKUP_TYPES"]
            assert names == [expected, *also], (command_name, long[0], names)
            assert param.show_envvar, (command_name, long[0])
            seen += 1
    assert "cat" in dict(_commands())
    assert seen > 60  # the walk reached every command's options


def _env(sim: Simulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
    env.update(sim.env())
    env["RDS_BACKUP_ENDPOINT"] = sim.endpoint
    env.update(extra)
    return env


def _download(sim: Simulator, out: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "downloader", "download", SQLSERVER_DB, "-o", str(out)],
        env=_env(sim, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _fetched(out: Path) -> set[str]:
    return {
        p.name.removeprefix(f"{SQLSERVER_DB}_") for p in out.iterdir() if p.name.endswith(".bak")
    }


def test_rds_backup_database_selects_the_database(sim_thread: Simulator, tmp_path: Path) -> None:
    result = _download(sim_thread, tmp_path / "a", RDS_BACKUP_DATABASE="hr")
    assert result.returncode == 0, result.stderr
    assert _fetched(tmp_path / "a") == {"hr.bak"}
    assert "old name" not in result.stderr


def test_the_old_variable_name_still_selects_with_a_warning(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    result = _download(sim_thread, tmp_path / "b", RDS_BACKUP_DATABASES="sales inventory")
    assert result.returncode == 0, result.stderr
    assert _fetched(tmp_path / "b") == {"sales.bak", "inventory.bak"}
    assert "RDS_BACKUP_DATABASES is the old name of RDS_BACKUP_DATABASE" in result.stderr
