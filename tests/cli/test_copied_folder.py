"""A copied or hand-edited output folder: its journal records and files are not the word of
the run that wrote them. A record whose size no rounding of the listed KB allows, or whose
part file disagrees with it, starts its file over with a warning; a finished file replaced
by a link is fetched again, never adopted. The real command in subprocesses, against the
simulator."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from test_cli import assert_exact, cli, env_for, server  # noqa: F401 (a fixture)

from downloader.disk.hashing import hash_file
from downloader.disk.storage import MANIFEST_NAME, Layout
from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_FULL

MIB = 1024 * 1024


def downloaded(sim: Simulator, out: Path) -> Layout:
    first = cli(["download", MYSQL_FULL, "-o", str(out)], sim)
    assert first.returncode == 0, first.stderr
    return Layout(out)


def edit_record(layout: Layout, name: str, **fields: object) -> dict[str, object]:
    path = layout.record(name)
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))
    return record


def file_of(sim: Simulator, size: int) -> str:
    return next(f.name for f in sim.backups[MYSQL_FULL].files if f.size == size)


def test_a_record_of_2_63_bytes_restarts_its_file(server: Simulator, tmp_path: Path) -> None:  # noqa: F811
    """Planned as it says, 2**63 bytes would be 2**41 chunks: memory until the kernel kills
    the run. The run is held to 1.5 GiB of address space, so that shows as a failure."""
    layout = downloaded(server, tmp_path)
    big = file_of(server, 3 * MIB + 123)
    (tmp_path / big).unlink()
    edit_record(layout, big, size=2**63, done=[], complete=False, in_place=None)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 * MIB, 1536 * MIB))

    result = subprocess.run(
        [sys.executable, "-m", "downloader", "download", MYSQL_FULL, "-o", str(tmp_path)],
        env=env_for(server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=limit,
    )
    assert result.returncode == 0, result.stderr
    assert f"{big}: journal says {2**63} bytes, which the listed 3073 KB rule out" in result.stderr
    assert "restarting this file" in result.stderr
    assert_exact(server, MYSQL_FULL, tmp_path)


def test_a_part_file_longer_than_its_record_restarts_its_file(
    server: Simulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The record says 50 bytes, all done; beside it a part file of 100 other bytes. Trusted,
    nothing is fetched and a wrong file lands under the final name."""
    layout = downloaded(server, tmp_path)
    meta = file_of(server, 777)
    (tmp_path / meta).unlink()
    edit_record(layout, meta, size=50, done=[[0, 50]], complete=False, in_place=None, crc64=None)
    layout.part(meta).write_bytes(b"X" * 100)
    server.stats.reset()
    result = cli(["download", MYSQL_FULL, "-o", str(tmp_path)], server)
    assert result.returncode == 0, result.stderr
    assert f"{meta}: part file of 100 bytes, longer than the journal's 50" in result.stderr
    assert server.stats.object_bytes_sent == 777
    assert_exact(server, MYSQL_FULL, tmp_path)


def test_a_finished_file_replaced_by_a_link_is_not_adopted(
    server: Simulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A run stopped between the move into place and its record: the next one adopts the
    file in place if it hashes right. A link to an identical copy is not that file."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    layout = downloaded(server, out)
    name = file_of(server, 1 * MIB + 1)
    rec = json.loads(layout.record(name).read_text())
    edit_record(layout, name, complete=False, in_place=None, done=[[0, rec["size"]]])
    elsewhere.mkdir()
    (out / name).rename(elsewhere / name)
    (out / name).symlink_to(elsewhere / name)
    copy = (elsewhere / name).read_bytes()
    result = cli(["download", MYSQL_FULL, "-o", str(out)], server)
    assert result.returncode == 0, result.stderr
    assert not (out / name).is_symlink()
    assert (out / name).lstat().st_size == rec["size"]
    assert_exact(server, MYSQL_FULL, out)
    assert (elsewhere / name).read_bytes() == copy


def test_verify_never_reads_through_a_linked_subfolder(tmp_path: Path) -> None:
    """``db1`` a link to a folder elsewhere holding an exact copy of ``db1/full.bak``: the
    files elsewhere are not the folder's, and are not called ok."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (elsewhere / "db1").mkdir(parents=True)
    data = b"a SQL Server full backup\n" * 100
    (elsewhere / "db1" / "full.bak").write_bytes(data)
    crc = hash_file(elsewhere / "db1" / "full.bak", sha256=False, md5=False).crc64.value
    out.mkdir()
    (out / "db1").symlink_to(elsewhere / "db1", target_is_directory=True)
    entry = {"name": "db1/full.bak", "size": len(data), "size_kb": 3, "crc64": f"{crc:016x}"}
    manifest = {"manifest_version": 2, "backup_id": "b", "files": [entry]}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = cli(["verify", str(out)], None)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"{out / 'db1'} is a symbolic link" in result.stdout + result.stderr
