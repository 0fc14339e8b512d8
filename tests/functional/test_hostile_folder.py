"""An output folder someone else could write to before the run: links planted where the
tool keeps its state or a file's folder are refused (exit 2, naming the link), never
followed, and nothing outside the output folder is created, modified or truncated."""

from __future__ import annotations

import datetime
import os
import stat
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from downloader.api.auth import AkSkAuth
from downloader.api.client import RdsClient, RetryPolicy
from downloader.disk import storage
from downloader.disk.journal import Journal
from downloader.disk.lock import FolderLock
from downloader.disk.storage import MANIFEST_NAME, STATE_DIR, Layout
from downloader.download import RunReport, Selection, TransportConfig, run_download
from downloader.engine.core import EngineConfig
from downloader.errors import UntrustedFolderError
from downloader.models import FileListing
from downloader.progress import QuietReporter
from downloader.sim import SimBackup, SimFile, Simulator, SimulatorThread

KIB = 1024
BACKUP = "c0ffee0000000000000000000000beefbr04"
NESTED = "db1/full.bak"  # a file in a folder of its own
TOP = "top.bak"
# A time no run of the tool could give a file it touched.
LONG_AGO_NS = 1_000_000_000 * 1_000_000_000


def backup() -> SimBackup:
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return SimBackup(
        id=BACKUP, instance_id="i", name="b", type="auto", status="COMPLETED",
        engine="SQLServer", engine_version="2019", begin_time=start,
        end_time=start + datetime.timedelta(hours=1),
        files=[SimFile(NESTED, 300 * KIB + 11, "db1"), SimFile(TOP, 70 * KIB + 3)],
    )  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(catalog=[backup()]) as simulator:
        yield simulator


async def run(sim: Simulator, out: Path) -> RunReport:
    async with aiohttp.ClientSession() as session:
        client = RdsClient(
            endpoint=sim.endpoint,
            project_id=sim.project_id,
            auth=AkSkAuth(sim.ak, sim.sk, project_id=sim.project_id),
            session=session,
            retry=RetryPolicy(base_delay=0.01, max_delay=0.05),
        )

        async def fetch() -> FileListing:
            return await client.show_backup_files(BACKUP)

        return await run_download(
            EngineConfig(out_dir=out, backup_id=BACKUP, backoff_base=0.01, backoff_max=0.2),
            await fetch(),
            fetch=fetch,
            selection=Selection(),
            transport=TransportConfig(stall_timeout=5.0),
            reporter=QuietReporter(),
        )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the output folder, with a file a planted link points at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    victim = folder / "victim"
    victim.write_bytes(b"not the tool's to write\n" * 100)
    os.utime(victim, ns=(LONG_AGO_NS, LONG_AGO_NS))
    os.utime(folder, ns=(LONG_AGO_NS, LONG_AGO_NS))
    return folder


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry under ``folder`` (and the folder itself) with its bytes and mtime."""
    out = {".": (b"", folder.stat().st_mtime_ns)}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = (
            p.read_bytes() if p.is_file() else b"",
            p.lstat().st_mtime_ns,
        )
    return out


def state_dirs(out: Path) -> Layout:
    layout = Layout(out)
    for d in (layout.state, layout.parts, layout.journal):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return layout


def plant_state_folder(out: Path, outside: Path) -> Path:
    out.mkdir()
    (out / STATE_DIR).symlink_to(outside, target_is_directory=True)
    return out / STATE_DIR


def plant_lock(out: Path, outside: Path) -> Path:
    link = state_dirs(out).lock
    link.symlink_to(outside / "victim")
    return link


def plant_part(out: Path, outside: Path) -> Path:
    link = state_dirs(out).part(NESTED)
    link.symlink_to(outside / "victim")
    return link


def plant_record(out: Path, outside: Path) -> Path:
    link = state_dirs(out).record(NESTED)
    link.symlink_to(outside / "victim")
    return link


def plant_file_folder(out: Path, outside: Path) -> Path:
    out.mkdir()
    (out / "db1").symlink_to(outside, target_is_directory=True)
    return out / "db1"


@pytest.mark.parametrize(
    "plant",
    [plant_state_folder, plant_lock, plant_part, plant_record, plant_file_folder],
    ids=["state-folder", "lock", "part-file", "journal-record", "file-folder"],
)
async def test_a_planted_link_is_refused_and_its_target_untouched(
    sim: Simulator, tmp_path: Path, outside: Path, plant: Callable[[Path, Path], Path]
) -> None:
    out = tmp_path / "out"
    link = plant(out, outside)
    before = snapshot(outside)
    with pytest.raises(UntrustedFolderError) as info:
        await run(sim, out)
    assert info.value.exit_code == 2
    assert str(link) in str(info.value) and "symbolic link" in str(info.value)
    assert snapshot(outside) == before
    assert link.is_symlink()  # refused, not silently removed either
    assert not (out / NESTED).exists() and not (out / MANIFEST_NAME).exists()


def test_the_cli_names_the_link_in_one_line_with_exit_2(tmp_path: Path, outside: Path) -> None:
    out = tmp_path / "out"
    link = plant_state_folder(out, outside)
    before = snapshot(outside)
    sim = Simulator(catalog=[backup()])
    with SimulatorThread(sim):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
        env.update(sim.env(), RDS_BACKUP_ENDPOINT=sim.endpoint)
        result = subprocess.run(
            [sys.executable, "-m", "downloader", "download", BACKUP, "-o", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(link) in lines[0], result.stderr
    assert snapshot(outside) == before


async def test_a_loose_state_folder_ends_0700(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    layout = state_dirs(out)
    for d in (layout.state, layout.parts, layout.journal):
        d.chmod(0o777)
    report = await run(sim, out)
    assert report.exit_code == 0
    for d in (layout.state, layout.parts, layout.journal):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert (out / NESTED).read_bytes() == sim.expected_bytes(BACKUP, NESTED)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder away needs root")
async def test_a_state_folder_of_another_user_is_refused(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    layout = Layout(out)
    layout.state.mkdir(mode=0o700, parents=True)
    os.chown(layout.state, 4242, 4242)
    with pytest.raises(UntrustedFolderError) as info:
        await run(sim, out)
    assert str(layout.state) in str(info.value) and "uid 4242" in str(info.value)
    assert not layout.parts.exists()


async def test_a_link_at_the_manifests_old_temporary_name_is_left_alone(
    sim: Simulator, tmp_path: Path, outside: Path
) -> None:
    """The manifest's temporary file is made in the output folder itself: a link planted at
    the name it used to have (pid and thread, both guessable) must not be truncated through."""
    out = tmp_path / "out"
    out.mkdir()
    guessed = out / f"{MANIFEST_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
    guessed.symlink_to(outside / "victim")
    before = snapshot(outside)
    report = await run(sim, out)
    assert report.exit_code == 0 and (out / MANIFEST_NAME).is_file()
    assert snapshot(outside) == before
    assert guessed.is_symlink()


# Links planted after the start's check (a race): every open refuses them on its own.


def test_state_files_are_never_opened_through_a_link(tmp_path: Path, outside: Path) -> None:
    layout = Layout(tmp_path / "out")
    layout.prepare()
    victim = outside / "victim"
    before = snapshot(outside)
    part = layout.part(NESTED)
    part.symlink_to(victim)
    for new in (True, False):
        with pytest.raises(UntrustedFolderError, match=str(part)):
            storage.create_part(part, new=new)
    with pytest.raises(UntrustedFolderError, match=str(part)):
        storage.part_opener(str(part), os.O_RDWR)
    with pytest.raises(UntrustedFolderError, match=str(part)):
        storage.preallocate(part, 4096)
    with pytest.raises(UntrustedFolderError, match=str(part)):
        storage.truncate(part, 0)
    record = layout.record(NESTED)
    record.symlink_to(victim)
    with pytest.raises(UntrustedFolderError, match=str(record)):
        Journal(layout).load(BACKUP, NESTED, 1)
    layout.lock.symlink_to(victim)
    with pytest.raises(UntrustedFolderError, match=str(layout.lock)):
        FolderLock(layout.lock, str(layout.root))._try()
    assert snapshot(outside) == before


def test_a_lock_in_a_linked_state_folder_is_refused(tmp_path: Path, outside: Path) -> None:
    out = tmp_path / "out"
    link = plant_state_folder(out, outside)
    with pytest.raises(UntrustedFolderError, match=str(link)):
        FolderLock(Layout(out).lock, str(out))._try()
    assert not (outside / "lock").exists()


def test_a_new_part_file_replaces_a_leftover(tmp_path: Path) -> None:
    """A part file left by a run stopped before its first record is of no use: a new part
    file is a new inode of our own (O_EXCL), empty and 0600."""
    layout = Layout(tmp_path / "out")
    layout.prepare()
    part = layout.part(TOP)
    part.write_bytes(b"left over")
    os.chmod(part, 0o644)
    storage.create_part(part, new=True)
    assert part.read_bytes() == b""
    assert stat.S_IMODE(part.stat().st_mode) == 0o600  # made anew: O_CREAT alone keeps 0644
    part.write_bytes(b"resume me")
    storage.create_part(part, new=False)
    assert part.read_bytes() == b"resume me"


def test_the_move_into_place_never_goes_through_a_linked_folder(
    tmp_path: Path, outside: Path
) -> None:
    layout = Layout(tmp_path / "out")
    layout.prepare()
    part = layout.part(NESTED)
    storage.create_part(part, new=True)
    part.write_bytes(b"backup bytes")
    (layout.root / "db1").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    with pytest.raises(UntrustedFolderError, match=str(layout.root / "db1")):
        storage.move_into_place(part, layout.final(NESTED), layout.root)
    assert snapshot(outside) == before
    assert part.read_bytes() == b"backup bytes"
    (layout.root / "db1").unlink()
    storage.move_into_place(part, layout.final(NESTED), layout.root)
    assert (layout.root / NESTED).read_bytes() == b"backup bytes" and not part.exists()
