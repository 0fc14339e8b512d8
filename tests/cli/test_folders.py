"""The output folder, in real subprocesses against the simulator: one folder holds one backup
(another's download is refused, exit 2), and a folder that cannot take the files exits 6."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mounts import tmpfs
from test_cli import assert_exact, cli, env_for

from downloader.disk.storage import MANIFEST_NAME, STATE_DIR
from downloader.sim import Simulator, SimulatorThread
from downloader.sim.catalog import MYSQL_FULL, SQLSERVER_DB


@pytest.fixture
def server() -> Iterator[Simulator]:
    sim = Simulator()
    with SimulatorThread(sim):
        yield sim


def manifest_backup(out: Path) -> str:
    backup_id: str = json.loads((out / MANIFEST_NAME).read_text())["backup_id"]
    return backup_id


def entries(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.name != STATE_DIR}


def saved_links(sim: Simulator, backup_id: str) -> str:
    """A backup-files answer as a user would save it from the API, for --links-file."""
    import aiohttp

    from downloader.api.auth import AkSkAuth
    from downloader.api.client import RdsClient

    async def fetch() -> str:
        async with aiohttp.ClientSession() as session:
            client = RdsClient(
                endpoint=sim.endpoint,
                project_id=sim.project_id,
                auth=AkSkAuth(sim.ak, sim.sk),
                session=session,
            )
            got = await client.show_backup_files(backup_id)
        files = [
            {
                "name": f.name,
                "size": f.size_kb,
                "download_link": f.download_link,
                "database_name": f.database_name or "",
            }
            for f in got.files
        ]
        return json.dumps({"bucket": got.bucket, "files": files})

    return asyncio.run(fetch())


# ------------------------------------------------------------------ one folder, one backup


def test_a_folder_refuses_another_backup(server: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli(["download", SQLSERVER_DB, "-o", str(out)], server).returncode == 0
    before = entries(out)
    sent = server.stats.object_bytes_sent

    other = cli(["download", MYSQL_FULL, "-o", str(out)], server)
    assert other.returncode == 2, other.stderr
    assert len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert f"holds backup {SQLSERVER_DB}" in other.stderr
    assert "new folder" in other.stderr
    # Nothing fetched, nothing written: the folder still holds its backup, and only it.
    assert server.stats.object_bytes_sent == sent
    assert entries(out) == before
    assert manifest_backup(out) == SQLSERVER_DB

    # Without its manifest (a run not finished yet), its journal records still name it.
    (out / MANIFEST_NAME).unlink()
    again = cli(["download", MYSQL_FULL, "-o", str(out)], server)
    assert again.returncode == 2, again.stderr
    assert f"holds backup {SQLSERVER_DB}" in again.stderr
    assert server.stats.object_bytes_sent == sent

    # Its own backup is welcome: nothing to fetch, the manifest back.
    same = cli(["download", SQLSERVER_DB, "-o", str(out)], server)
    assert same.returncode == 0, same.stderr
    assert server.stats.object_bytes_sent == sent
    assert manifest_backup(out) == SQLSERVER_DB

    # Another folder takes the other backup.
    assert cli(["download", MYSQL_FULL, "-o", str(tmp_path / "b")], server).returncode == 0
    assert_exact(server, MYSQL_FULL, tmp_path / "b")


def run_links_file(
    sim: Simulator, links: str, out: Path, *backup_id: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "downloader", "download", *backup_id, "-o", str(out),
         "--links-file", "-"],
        input=links, env=env_for(sim), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_links_file_runs_are_one_backup_too(server: Simulator, tmp_path: Path) -> None:
    """A links file names no backup: given BACKUP_ID, the run is that backup's (and resumes
    the API's download); without one it is "links-file", and a folder holds only one of
    the two."""
    out = tmp_path / "out"
    links = saved_links(server, SQLSERVER_DB)
    assert cli(["download", SQLSERVER_DB, "-o", str(out)], server).returncode == 0
    sent = server.stats.object_bytes_sent

    anonymous = run_links_file(server, links, out)
    assert anonymous.returncode == 2, anonymous.stderr
    assert f"holds backup {SQLSERVER_DB}" in anonymous.stderr
    assert f"give {SQLSERVER_DB} as BACKUP_ID" in anonymous.stderr
    assert server.stats.object_bytes_sent == sent

    named = run_links_file(server, links, out, SQLSERVER_DB)
    assert named.returncode == 0, named.stderr
    assert server.stats.object_bytes_sent == sent  # the same backup: found in place

    # A folder filled from a links file without BACKUP_ID refuses a named backup.
    bare = tmp_path / "bare"
    assert run_links_file(server, links, bare).returncode == 0
    assert manifest_backup(bare) == "links-file"
    named_later = cli(["download", SQLSERVER_DB, "-o", str(bare)], server)
    assert named_later.returncode == 2, named_later.stderr
    assert "holds a --links-file download given no BACKUP_ID" in named_later.stderr


def test_backup_id_with_latest_is_a_usage_error(server: Simulator, tmp_path: Path) -> None:
    instance = server.backups[MYSQL_FULL].instance_id
    calls = server.stats.api_calls
    args = ["download", SQLSERVER_DB, "--instance-id", instance, "--latest", "-o", str(tmp_path)]
    result = cli(args, server)
    assert result.returncode == 2, result.stderr
    assert "not both" in result.stderr and SQLSERVER_DB in result.stderr
    assert server.stats.api_calls == calls
    assert entries(tmp_path) == set()


# ------------------------------------------------------------------ storage problems: exit 6


def test_output_that_cannot_be_a_folder_exits_6(server: Simulator, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = cli(["download", MYSQL_FULL, "-o", str(tmp_path / "file" / "out")], server)
    assert result.returncode == 6, result.stderr
    assert "cannot create" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert server.stats.object_bytes_sent == 0


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mnt:
        yield mnt


@pytest.mark.parametrize("where", [".", "out"], ids=["the-mount", "a-new-folder-in-it"])
def test_read_only_filesystem_exits_6(server: Simulator, read_only: Path, where: str) -> None:
    result = cli(["download", MYSQL_FULL, "-o", str(read_only / where)], server)
    assert result.returncode == 6, result.stderr
    assert "Read-only file system" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert server.stats.object_bytes_sent == 0


def test_cat_into_a_full_disk_exits_6(server: Simulator, tmp_path: Path) -> None:
    """``cat ... > file``: standard output is a file on a disk that fills up."""
    big = max(server.backups[MYSQL_FULL].files, key=lambda f: f.size)
    assert big.size > 2 * 1024 * 1024
    with tmpfs(tmp_path / "small") as mnt:
        with open(mnt / "part", "wb") as sink:
            result = subprocess.run(
                [sys.executable, "-m", "downloader", "cat", MYSQL_FULL, big.name],
                stdout=sink, stderr=subprocess.PIPE, env=env_for(server), text=True,
                timeout=60, check=False,
            )  # fmt: skip
        assert result.returncode == 6, result.stderr
        assert "No space left on device" in result.stderr
        assert "Traceback" not in result.stderr


def test_help_names_every_exit_code() -> None:
    result = cli(["--help"], None)
    assert result.returncode == 0
    assert "6 the output folder cannot take the files" in " ".join(result.stdout.split())
    assert "folder that holds another backup" in " ".join(result.stdout.split())
