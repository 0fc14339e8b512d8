"""The download path end to end against the simulator over loopback: resolve, schedule,
transfer, verify, write the manifest; every fault the object store can throw."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from downloader.api.auth import AkSkAuth
from downloader.api.client import RdsClient, RetryPolicy
from downloader.disk.journal import Journal
from downloader.disk.lock import FolderLock
from downloader.disk.storage import MANIFEST_NAME, STATE_DIR, Layout
from downloader.download import (
    NothingSelectedError,
    RunReport,
    Selection,
    TransportConfig,
    run_download,
)
from downloader.engine.core import EngineConfig
from downloader.errors import (
    FileGoneError,
    LinkRefusedError,
    LockHeldError,
    UnsafeNameError,
    VerificationError,
)
from downloader.models import BackupFile, FileListing
from downloader.progress import QuietReporter
from downloader.sim import SimBackup, SimFile, Simulator
from downloader.sim.catalog import (
    MYSQL_FULL,
    MYSQL_MANY,
    MYSQL_MULTIPART,
    SQLSERVER_DB,
)

KIB = 1024
MIB = 1024 * 1024


async def run(
    sim: Simulator,
    backup_id: str,
    out: Path,
    *,
    links: FileListing | None = None,
    selection: Selection | None = None,
    transport: TransportConfig | None = None,
    wait_lock: bool = False,
    **cfg: Any,
) -> RunReport:
    """One download run through the library, with a real API client."""
    cfg.setdefault("backoff_base", 0.01)
    cfg.setdefault("backoff_max", 0.2)
    async with aiohttp.ClientSession() as session:
        client = RdsClient(
            endpoint=sim.endpoint,
            project_id=sim.project_id,
            auth=AkSkAuth(sim.ak, sim.sk, project_id=sim.project_id),
            session=session,
            retry=RetryPolicy(base_delay=0.01, max_delay=0.05),
        )

        async def fetch() -> FileListing:
            return await client.show_backup_files(backup_id)

        listing = links if links is not None else await fetch()
        return await run_download(
            EngineConfig(out_dir=out, backup_id=backup_id, **cfg),
            listing,
            fetch=None if links is not None else fetch,
            selection=selection or Selection(),
            transport=transport or TransportConfig(stall_timeout=5.0),
            reporter=QuietReporter(),
            wait_lock=wait_lock,
        )


def assert_exact(sim: Simulator, backup_id: str, out: Path, names: list[str] | None = None) -> None:
    backup = sim.backups[backup_id]
    for f in backup.files:
        if names is not None and f.name not in names:
            continue
        path = out / f.name
        assert path.read_bytes() == sim.expected_bytes(backup_id, f.name), f.name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f.name
    assert_manifest_checksums(sim, backup_id, out)


def assert_manifest_checksums(sim: Simulator, backup_id: str, out: Path) -> None:
    """Where a manifest was written, every CRC-64 it records is the object's own (whether it
    was folded from pieces written in this run or read back)."""
    if not (out / MANIFEST_NAME).exists():
        return
    for entry in json.loads((out / MANIFEST_NAME).read_text())["files"]:
        assert entry["crc64"] == f"{sim.expected_crc64(backup_id, entry['name']):016x}"


def one_backup(backup_id: str, files: list[SimFile], engine: str = "MySQL") -> SimBackup:
    """A completed backup of these files, for a simulator of its own."""
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return SimBackup(
        id=backup_id, instance_id="i", name="b", type="auto", status="COMPLETED",
        engine=engine, engine_version="8.0", begin_time=start,
        end_time=start + datetime.timedelta(hours=1), files=files,
    )  # fmt: skip


async def listing_of(sim: Simulator, backup_id: str, *, ssl: bool | None = None) -> FileListing:
    """The backup-files answer, fetched once (to save, alter or replay as a links file)."""
    connector = aiohttp.TCPConnector(ssl=False) if ssl is False else None
    async with aiohttp.ClientSession(connector=connector) as session:
        client = RdsClient(
            endpoint=sim.endpoint,
            project_id=sim.project_id,
            auth=AkSkAuth(sim.ak, sim.sk, project_id=sim.project_id),
            session=session,
            ssl=ssl,
        )
        return await client.show_backup_files(backup_id)


def biggest(sim: Simulator, backup_id: str = MYSQL_FULL) -> SimFile:
    """The largest file of a backup: the one worth fetching in several ranges."""
    return max(sim.backups[backup_id].files, key=lambda f: f.size)


def folder_entries(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()}


async def test_full_backup_is_byte_exact_with_manifest(sim: Simulator, tmp_path: Path) -> None:
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path)
    names = {f.name for f in sim.backups[MYSQL_FULL].files}
    # Only the files, the manifest and the state folder: nothing else is left behind.
    assert folder_entries(tmp_path) == names | {MANIFEST_NAME, STATE_DIR}
    assert not list((tmp_path / STATE_DIR / "parts").iterdir())
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["backup_id"] == MYSQL_FULL
    by_name = {e["name"]: e for e in manifest["files"]}
    assert set(by_name) == names
    for f in sim.backups[MYSQL_FULL].files:
        assert by_name[f.name]["crc64"] == f"{sim.expected_crc64(MYSQL_FULL, f.name):016x}"
        assert by_name[f.name]["sha256"] is None  # only with --sha256
        assert by_name[f.name]["size"] == f.size
    assert any(f.size == 0 for f in sim.backups[MYSQL_FULL].files)
    assert sim.stats.forbidden_header_requests == 0


async def test_sha256_is_recorded_when_asked(sim: Simulator, tmp_path: Path) -> None:
    report = await run(sim, MYSQL_FULL, tmp_path, sha256=True, per_file=4, chunk_size=256 * KIB)
    assert report.exit_code == 0
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    for entry in manifest["files"]:
        assert entry["sha256"] == sim.expected_sha256(MYSQL_FULL, entry["name"])
        assert entry["crc64"] == f"{sim.expected_crc64(MYSQL_FULL, entry['name']):016x}"


def _as_if_stopped_after_the_rename(out: Path, f: SimFile, **change: Any) -> None:
    """Rewrite a finished file's record as a run killed right after the move into place
    leaves it: every byte named, its CRC-64 recorded, not yet complete; no manifest."""
    journal = Journal(Layout(out))
    rec, _ = journal.load(MYSQL_FULL, f.name, f.size_kb)
    assert rec is not None and rec.complete and rec.size == f.size
    rec.complete = False
    for key, value in change.items():
        setattr(rec, key, value)
    journal.save(rec)
    (out / MANIFEST_NAME).unlink()


@pytest.mark.parametrize("change", [{}, {"crc64": None}], ids=["crc", "md5-etag"])
async def test_stopped_after_the_move_into_place_is_adopted_not_refetched(
    sim: Simulator, tmp_path: Path, change: dict[str, Any]
) -> None:
    """The record is written (with the file's CRC-64) before the rename: a kill after the
    rename leaves a file the rerun checks in place instead of fetching it again. A record
    without a CRC-64 (an older run's) is checked against the MD5 its ETag gives."""
    big = biggest(sim)
    assert not big.multipart_etag  # its ETag is its MD5
    await run(sim, MYSQL_FULL, tmp_path)
    _as_if_stopped_after_the_rename(tmp_path, big, **change)
    sent = sim.stats.object_bytes_sent
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 0
    assert sim.stats.object_bytes_sent == sent
    assert_exact(sim, MYSQL_FULL, tmp_path)


@pytest.mark.parametrize(
    "change",
    [{}, {"crc64": None}, {"done": [(0, 1024)], "crc64": None}],
    ids=["crc", "no-crc", "partial"],
)
async def test_a_same_size_stranger_in_place_is_never_adopted(
    sim: Simulator, tmp_path: Path, change: dict[str, Any]
) -> None:
    """The part file is gone and a file of the right size but other bytes has the final name
    (copied there by hand, say): it is fetched again, whatever the record says, unless
    its CRC-64 matches the one recorded. (MD5 checks off: as for a multipart upload, the
    ETag cannot tell.)"""
    await run(sim, MYSQL_FULL, tmp_path, check_md5=False)
    big = biggest(sim)
    _as_if_stopped_after_the_rename(tmp_path, big, **change)
    (tmp_path / big.name).write_bytes(b"\0" * big.size)
    sent = sim.stats.object_bytes_sent
    report = await run(sim, MYSQL_FULL, tmp_path, check_md5=False)
    assert report.exit_code == 0
    assert sim.stats.object_bytes_sent >= sent + big.size
    assert_exact(sim, MYSQL_FULL, tmp_path)


async def test_rerun_after_success_transfers_nothing(sim: Simulator, tmp_path: Path) -> None:
    await run(sim, MYSQL_FULL, tmp_path)
    sent = sim.stats.object_bytes_sent
    requests = sim.stats.object_requests
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 0
    assert all(o.skipped for o in report.outcomes)
    assert sim.stats.object_bytes_sent == sent
    assert sim.stats.object_requests == requests
    assert (tmp_path / MANIFEST_NAME).exists()


async def test_a_finished_file_whose_stat_changed_is_hashed_before_it_is_trusted(
    sim: Simulator, tmp_path: Path
) -> None:
    """A record without the file's stat (written before it was recorded) or a stat that
    changed has the file hashed once: still exact, it is skipped and its stat recorded;
    damaged (here with no stat to tell), it is fetched again."""
    await run(sim, MYSQL_FULL, tmp_path)
    damaged, unknown, touched, untouched = sorted(
        sim.backups[MYSQL_FULL].files, key=lambda f: -f.size
    )
    journal = Journal(Layout(tmp_path))
    records = {}
    for f in (damaged, unknown, touched, untouched):
        rec, _ = journal.load(MYSQL_FULL, f.name, f.size_kb)
        assert rec is not None and rec.in_place is not None
        assert rec.in_place.ino == (tmp_path / f.name).stat().st_ino
        records[f.name] = rec
    for f in (damaged, unknown):
        records[f.name].in_place = None
        journal.save(records[f.name])
    path = tmp_path / damaged.name
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x80
    path.write_bytes(bytes(data))
    os.utime(tmp_path / touched.name, ns=(0, 10**18))
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 0
    assert report.bytes_fetched == damaged.size
    assert {o.name for o in report.outcomes if not o.skipped} == {damaged.name}
    assert_exact(sim, MYSQL_FULL, tmp_path)
    for f in (damaged, unknown, touched, untouched):
        rec, _ = journal.load(MYSQL_FULL, f.name, f.size_kb)
        assert rec is not None and rec.complete and rec.in_place is not None
        st = (tmp_path / f.name).stat()
        assert (rec.in_place.mtime_ns, rec.in_place.ctime_ns) == (st.st_mtime_ns, st.st_ctime_ns)
        if f is untouched:
            assert rec.in_place == records[f.name].in_place


async def test_two_ranges_of_one_file_in_flight(sim: Simulator, tmp_path: Path) -> None:
    big = biggest(sim)
    sim.faults.throttle_bps = 4 * MIB
    report = await run(
        sim,
        MYSQL_FULL,
        tmp_path,
        selection=Selection(include=(big.name,)),
        chunk_size=512 * KIB,
        per_file=4,
    )
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path, [big.name])
    assert sim.stats.object_max_concurrent >= 2
    ranges = [r.range for r in sim.stats.object_requests_log if r.name == big.name]
    assert len(ranges) >= 4  # ranged GETs, not one stream


async def test_many_files_share_the_connection_budget(sim: Simulator, tmp_path: Path) -> None:
    report = await run(sim, MYSQL_MANY, tmp_path, jobs=8, connections=6)
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_MANY, tmp_path)
    assert sim.stats.object_max_concurrent <= 6


@pytest.mark.parametrize(
    "fault",
    [
        {"reset_after_bytes": 300 * KIB, "reset_count": 2},
        {"truncate_after_bytes": 200 * KIB, "truncate_count": 2},
        {"error_status": 503, "error_count": 2, "retry_after": 0.1},
        {"error_status": 500, "error_count": 1},
        {"error_status": 429, "error_count": 1, "retry_after": 0.05},
    ],
    ids=["reset", "truncated", "503-retry-after", "500", "429"],
)
async def test_transient_faults_end_byte_exact(
    sim: Simulator, tmp_path: Path, fault: dict[str, Any]
) -> None:
    for key, value in fault.items():
        setattr(sim.faults, key, value)
    report = await run(sim, MYSQL_FULL, tmp_path, chunk_size=1 * MIB)
    assert report.exit_code == 0, [o.detail for o in report.outcomes]
    assert report.retries >= 1
    assert_exact(sim, MYSQL_FULL, tmp_path)


async def test_retry_after_is_honoured(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.error_status = 503
    sim.faults.error_count = 1
    sim.faults.retry_after = 0.6
    loop = asyncio.get_running_loop()
    start = loop.time()
    report = await run(sim, MYSQL_FULL, tmp_path, jobs=1, backoff_base=0.001)
    assert report.exit_code == 0
    assert loop.time() - start >= 0.6


async def test_stalled_connection_is_aborted_and_resumed(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.stall_after_bytes = 256 * KIB
    sim.faults.stall_seconds = 10
    report = await run(sim, MYSQL_FULL, tmp_path, transport=TransportConfig(stall_timeout=0.5))
    assert report.exit_code == 0
    assert report.retries >= 1
    assert_exact(sim, MYSQL_FULL, tmp_path)


async def test_server_ignoring_range_falls_back_to_one_stream(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.ignore_range = True
    report = await run(sim, MYSQL_FULL, tmp_path, chunk_size=256 * KIB)
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path)
    # One stream per non-empty file: no file was fetched as many whole-object copies.
    size = sum(f.size for f in sim.backups[MYSQL_FULL].files)
    assert sim.stats.object_bytes_sent <= size + 4096


async def test_content_change_mid_download_restarts_the_file(
    sim: Simulator, tmp_path: Path
) -> None:
    big = biggest(sim)
    sim.faults.change_after_bytes = 1 * MIB
    sim.faults.fault_files = {big.name}
    report = await run(
        sim, MYSQL_FULL, tmp_path, selection=Selection(include=(big.name,)), chunk_size=512 * KIB
    )
    assert report.exit_code == 0
    assert report.restarts >= 1
    # The new content, exactly; never a mix of both versions.
    assert (tmp_path / big.name).read_bytes() == sim.expected_bytes(MYSQL_FULL, big.name)
    assert sim.stats.content_changes == 1


async def test_object_that_keeps_changing_fails_clearly(sim: Simulator, tmp_path: Path) -> None:
    big = biggest(sim)
    sim.faults.throttle_bps = 4 * MIB
    sim.faults.fault_files = {big.name}

    async def keep_changing() -> None:
        while True:  # re-arm the one-shot fault: a change every 600 KiB served
            if sim.faults.change_after_bytes is None:
                sim.faults.change_after_bytes = 600 * KIB
            await asyncio.sleep(0.01)

    changer = asyncio.create_task(keep_changing())
    try:
        report = await run(
            sim,
            MYSQL_FULL,
            tmp_path,
            selection=Selection(include=(big.name,)),
            chunk_size=256 * KIB,
        )
    finally:
        changer.cancel()
    assert report.exit_code == 1
    assert "keeps changing" in (report.outcomes[0].detail or "")
    assert not (tmp_path / big.name).exists()
    assert not (tmp_path / MANIFEST_NAME).exists()


@pytest.mark.parametrize(("delta", "tiny_ok"), [(-2, True), (2, False)])
async def test_a_kb_size_two_kb_off_is_no_rounding(
    sim: Simulator, tmp_path: Path, delta: int, tiny_ok: bool
) -> None:
    """The API's KB figure is the one independent word on a file's size: only a rounding
    of the bytes (floor, ceil or round, a KB of 1024 or 1000 bytes) passes, so the files of
    megabytes fail 2 KB either way. The tiny files (777 and 0 bytes) listed 2 KB less are
    listed as 0 KB, the floor of their size; 2 KB more is no rounding of theirs either."""
    sim.faults.wrong_kb_size = delta
    report = await run(sim, MYSQL_FULL, tmp_path)
    files = sim.backups[MYSQL_FULL].files
    tiny = {f.name for f in files if f.size < 1024}
    assert len(tiny) == 2
    expected_failed = {f.name for f in files} - (tiny if tiny_ok else set())
    assert {o.name for o in report.failed} == expected_failed
    assert all(isinstance(o.error, VerificationError) for o in report.failed)
    for f in files:
        assert (tmp_path / f.name).exists() == (f.name not in expected_failed)
    assert report.exit_code == 4


async def test_a_kb_size_that_clearly_disagrees_fails_verification(
    sim: Simulator, tmp_path: Path
) -> None:
    # 1 MiB more than each file (of 1 and 3 MiB) holds: no rounding explains that.
    sim.faults.wrong_kb_size = 1024
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 4
    assert {o.name for o in report.failed} == {f.name for f in sim.backups[MYSQL_FULL].files}
    assert all(isinstance(o.error, VerificationError) for o in report.failed)
    assert not any((tmp_path / f.name).exists() for f in sim.backups[MYSQL_FULL].files)
    assert not (tmp_path / MANIFEST_NAME).exists()


async def test_multipart_etag_is_not_taken_for_an_md5(sim: Simulator, tmp_path: Path) -> None:
    report = await run(sim, MYSQL_MULTIPART, tmp_path)
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_MULTIPART, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert all(e["md5"] is None for e in manifest["files"])


async def test_md5_mismatch_on_a_plain_etag_fails(sim: Simulator, tmp_path: Path) -> None:
    """A byte flipped in transit: sizes agree, but the MD5 does not match the ETag."""
    big = biggest(sim)
    sim.faults.corrupt_at = big.size // 2
    sim.faults.fault_files = {big.name}
    # In ranges: no answer is the whole object, so no CRC-64 comes along; the MD5 decides.
    report = await run(sim, MYSQL_FULL, tmp_path, chunk_size=1 * MIB)
    assert report.exit_code == 4
    (failed,) = report.failed
    assert failed.name == big.name
    assert "MD5" in (failed.detail or "")
    assert not (tmp_path / big.name).exists()
    assert not (tmp_path / MANIFEST_NAME).exists()
    # Nothing of it is kept for a resume.
    assert not list((tmp_path / STATE_DIR / "parts").iterdir())
    # The same bytes pass with the check off (for multipart ETags that are not MD5s).
    report = await run(sim, MYSQL_FULL, tmp_path, check_md5=False, chunk_size=1 * MIB)
    assert report.exit_code == 0


async def test_database_selection_fetches_only_that_database(
    sim: Simulator, tmp_path: Path
) -> None:
    report = await run(sim, SQLSERVER_DB, tmp_path, selection=Selection(databases=("sales",)))
    assert report.exit_code == 0
    files = sim.backups[SQLSERVER_DB].files
    sales = [f.name for f in files if f.database_name == "sales"]
    assert sales
    assert {o.name for o in report.outcomes} == set(sales)
    assert folder_entries(tmp_path) == set(sales) | {MANIFEST_NAME, STATE_DIR}
    assert_exact(sim, SQLSERVER_DB, tmp_path, sales)


async def test_glob_selection(sim: Simulator, tmp_path: Path) -> None:
    files = sim.backups[MYSQL_MANY].files
    pattern = files[0].name[:-6] + "*"
    report = await run(
        sim, MYSQL_MANY, tmp_path, selection=Selection(include=(pattern,), exclude=(files[0].name,))
    )
    expected = {f.name for f in files if f.name.startswith(pattern[:-1])} - {files[0].name}
    assert {o.name for o in report.outcomes} == expected


async def test_selecting_nothing_is_an_error(sim: Simulator, tmp_path: Path) -> None:
    with pytest.raises(NothingSelectedError):
        await run(sim, MYSQL_FULL, tmp_path, selection=Selection(include=("nope*",)))
    assert not tmp_path.joinpath(STATE_DIR).exists()


@pytest.mark.parametrize(
    "name",
    [
        "../escape.bak",
        "/etc/passwd",
        "a/../../b",
        "C:\\x.bak",
        "bad\x00name",
        "tab\tname",
        "..",
        ".rds-backup/journal/x",
        MANIFEST_NAME,
    ],
)
async def test_hostile_names_are_refused(tmp_path: Path, name: str) -> None:
    backup = one_backup("hostile000000000000000000000000000br01", [SimFile("ok.qp", 10 * KIB)])
    out = tmp_path / "out"
    async with Simulator(catalog=[backup]) as sim:
        listing = await listing_of(sim, backup.id)
        evil = dataclasses.replace(listing.files[0], name=name)
        hostile = FileListing((*listing.files, evil), listing.bucket)
        with pytest.raises(UnsafeNameError):
            await run(sim, backup.id, out, links=hostile)
    assert not any(tmp_path.iterdir())  # refused before anything was written


async def test_subfolders_in_names_stay_inside(tmp_path: Path) -> None:
    backup = one_backup(
        "subdir0000000000000000000000000000br01",
        [SimFile("db1/full.bak", 50 * KIB + 1, database_name="db1")],
        engine="SQLServer",
    )
    async with Simulator(catalog=[backup]) as sim:
        report = await run(sim, backup.id, tmp_path)
        assert report.exit_code == 0
        assert (tmp_path / "db1" / "full.bak").read_bytes() == sim.expected_bytes(
            backup.id, "db1/full.bak"
        )


async def test_second_run_on_a_locked_folder(sim: Simulator, tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.prepare()
    holder = FolderLock(layout.lock, str(tmp_path))
    await holder.acquire(wait=False)
    try:
        with pytest.raises(LockHeldError) as info:
            await run(sim, MYSQL_FULL, tmp_path)
        assert str(os.getpid()) in str(info.value)

        async def release_soon() -> None:
            await asyncio.sleep(0.5)
            holder.release()

        releaser = asyncio.create_task(release_soon())
        report = await run(sim, MYSQL_FULL, tmp_path, wait_lock=True)
        await releaser
        assert report.exit_code == 0
    finally:
        holder.release()


# ---------------------------------------------------------------- links that expire


async def test_short_lived_links_outlive_a_slow_download(sim: Simulator, tmp_path: Path) -> None:
    big = biggest(sim)
    sim.faults.link_lifetime = 1.0
    sim.faults.throttle_bps = 512 * KIB  # 2 connections: ~3 s, several link lifetimes
    loop = asyncio.get_running_loop()
    start = loop.time()
    report = await run(
        sim,
        MYSQL_FULL,
        tmp_path,
        selection=Selection(include=(big.name,)),
        chunk_size=256 * KIB,
        per_file=2,
        connections=2,
        transport=TransportConfig(expiry_margin=60.0, stall_timeout=5.0),
    )
    took = loop.time() - start
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path, [big.name])
    assert report.resolutions >= 2  # the download outlived several link lifetimes
    # Bounded: at most about one call per quarter-lifetime elapsed, plus the first.
    assert sim.stats.backup_files_calls <= 2 + took / 0.25


async def test_links_that_die_early_are_renewed_after_403(sim: Simulator, tmp_path: Path) -> None:
    big = biggest(sim)
    sim.faults.link_lifetime = 600
    # Links say ten minutes but die after 1.5 s (Expires has whole seconds: 0.5-1.5 s).
    sim.faults.link_true_lifetime = 1.5
    sim.faults.throttle_bps = 512 * KIB
    report = await run(
        sim,
        MYSQL_FULL,
        tmp_path,
        selection=Selection(include=(big.name,)),
        chunk_size=256 * KIB,
        per_file=2,
        connections=2,
    )
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path, [big.name])
    assert report.refusals >= 1
    assert report.resolutions >= 1


async def test_skewed_server_clock(sim: Simulator, tmp_path: Path) -> None:
    """The server's clock is ten minutes behind ours (APIG refuses more than 15): without
    skew correction every link would look long expired (a re-resolution before every
    request)."""
    big = biggest(sim)
    sim.faults.server_clock_offset = -600
    sim.faults.link_lifetime = 30
    report = await run(
        sim,
        MYSQL_FULL,
        tmp_path,
        selection=Selection(include=(big.name,)),
        chunk_size=256 * KIB,
    )
    assert report.exit_code == 0
    assert report.resolutions == 0
    assert sim.stats.backup_files_calls == 1


async def test_many_files_expiring_together_make_one_call_each_time(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.link_lifetime = 1.0
    sim.faults.throttle_bps = 256 * KIB
    report = await run(
        sim,
        MYSQL_MANY,
        tmp_path,
        jobs=16,
        connections=16,
        transport=TransportConfig(expiry_margin=60.0),
    )
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_MANY, tmp_path)
    # 16 connections hit the margin together each time; one API call serves them all.
    assert report.resolutions >= 1
    assert sim.stats.backup_files_calls <= 1 + report.resolutions
    assert report.resolutions <= report.seconds / 0.25 + 2


async def test_file_gone_from_the_reresolved_list(sim: Simulator, tmp_path: Path) -> None:
    files = sorted(sim.backups[MYSQL_FULL].files, key=lambda f: -f.size)
    big, other = files[0], files[1]
    sim.faults.link_lifetime = 1.0
    sim.faults.throttle_bps = 1 * MIB

    async def hide_later() -> None:
        await asyncio.sleep(0.3)
        sim.faults.hidden_files = {big.name}

    hider = asyncio.create_task(hide_later())
    report = await run(sim, MYSQL_FULL, tmp_path, chunk_size=256 * KIB, connections=2)
    await hider
    by_name = {o.name: o for o in report.outcomes}
    assert not by_name[big.name].ok
    assert isinstance(by_name[big.name].error, FileGoneError)
    assert by_name[other.name].ok
    assert report.exit_code == 1
    assert not (tmp_path / big.name).exists()
    assert not (tmp_path / MANIFEST_NAME).exists()


async def test_link_refused_even_after_renewal_fails_the_file(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.deny_objects = True
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 1
    assert all(isinstance(o.error, LinkRefusedError) for o in report.failed)
    assert "freshly resolved" in (report.failed[0].detail or "")
    assert sim.stats.backup_files_calls <= 3  # one renewal, shared


async def test_links_that_die_early_under_resets_are_renewed_not_judged_refused(
    sim: Simulator, tmp_path: Path
) -> None:
    # Links claim an hour but die within a second of issue, and every answer is cut after
    # 128 KiB: each renewed link delivers bytes before it dies, so no 403 here is a refusal
    # of a link that was never valid.
    sim.faults.link_lifetime = 3600.0
    sim.faults.link_true_lifetime = 1.0
    sim.faults.throttle_bps = 512 * KIB
    sim.faults.reset_after_bytes = 128 * KIB
    sim.faults.reset_count = -1
    report = await run(sim, MYSQL_FULL, tmp_path, chunk_size=1 * MIB, connections=2, retries=50)
    assert report.exit_code == 0, [o.detail for o in report.failed]
    assert_exact(sim, MYSQL_FULL, tmp_path)
    assert report.resolutions >= 2  # the renewed links died too, and were renewed again
    assert sim.stats.object_status_counts.get(403, 0) >= 2


async def test_links_file_with_short_lived_links(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.link_lifetime = 1.0
    listing = await listing_of(sim, MYSQL_FULL)
    # As saved to a file: no Date header comes with it.
    listing = dataclasses.replace(listing, server_date=None)
    calls = sim.stats.backup_files_calls
    await asyncio.sleep(1.2)  # the saved links are now dead
    report = await run(sim, MYSQL_FULL, tmp_path, links=listing)
    assert any("cannot be renewed" in w for w in report.warnings)
    assert report.exit_code == 1
    non_empty = [f for f in sim.backups[MYSQL_FULL].files if f.size > 0]
    failed = {o.name for o in report.failed}
    assert {f.name for f in non_empty} <= failed
    assert all(isinstance(o.error, LinkRefusedError) for o in report.failed)
    assert sim.stats.backup_files_calls == calls  # no API call was attempted


async def test_tls_mismatch_on_links_is_explained_not_bypassed(tmp_path: Path) -> None:
    """The object store's certificate does not name the host of the link: the file fails
    with words that say so and offer the way out; with --insecure-links it works."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("*.obs.sim.example")  # not 127.0.0.1
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    sim = Simulator()
    await sim.start(ssl_context=server_ctx)
    try:
        listing = await listing_of(sim, MYSQL_FULL, ssl=False)
        assert listing.files[0].download_link.startswith("https://")
        report = await run(
            sim,
            MYSQL_FULL,
            tmp_path / "a",
            links=listing,
            transport=TransportConfig(ca_bundle=str(ca_file)),
        )
        assert report.exit_code == 1
        detail = report.failed[0].detail or ""
        assert "TLS certificate check failed" in detail
        assert "--insecure-links" in detail
        assert report.retries == 0  # not retried: it cannot get better
        report = await run(
            sim, MYSQL_FULL, tmp_path / "b", links=listing, transport=TransportConfig(verify=False)
        )
        assert report.exit_code == 0
        assert_exact(sim, MYSQL_FULL, tmp_path / "b")
    finally:
        await sim.stop()


async def test_an_etag_with_a_control_character_fails_its_file_in_words(
    sim: Simulator, tmp_path: Path
) -> None:
    """An object store whose ETag holds a control character (aiohttp reads it, but refuses
    to send it back as If-Match): the file fails with words, no traceback; nothing of it is
    written. The simulator cannot send such a header (aiohttp guards it), so a raw server
    does."""
    data = bytes(range(256)) * 2400  # 600 KiB: more than one chunk, so If-Match is sent

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            first, last = head.split("Range: bytes=", 1)[1].split("\r\n", 1)[0].split("-")
            a = int(first)
            b = min(int(last), len(data) - 1) if last else len(data) - 1
            writer.write(
                f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{len(data)}\r\n"
                f'Content-Length: {b - a + 1}\r\nETag: "3f2a\x01-2"\r\n'
                "Connection: close\r\n\r\n".encode("latin-1")
                + data[a : b + 1]
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    listing = FileListing(
        (BackupFile("raw.qp", len(data) // KIB, f"http://127.0.0.1:{port}/raw.qp?s=1", None),),
        "bucket",
    )
    try:
        report = await run(
            sim, MYSQL_FULL, tmp_path, links=listing, chunk_size=256 * KIB, retries=2
        )
    finally:
        server.close()
        await server.wait_closed()
    assert report.exit_code == 1
    detail = report.failed[0].detail or ""
    assert "holds a control character" in detail and "\x01" not in detail
    assert not (tmp_path / "raw.qp").exists()


async def test_answer_headers_sent_a_line_at_a_time_are_bounded_by_the_stall_timeout(
    sim: Simulator, tmp_path: Path
) -> None:
    # One header line every 0.25 s for 5 s: each read sees a byte in time, so the stall
    # timeout (1 s) must bound the whole header phase. That attempt is given up and retried.
    sim.faults.header_trickle = 0.25
    sim.faults.header_trickle_lines = 20
    report = await run(
        sim, MYSQL_FULL, tmp_path, connections=1, transport=TransportConfig(stall_timeout=1.0)
    )
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path)
    assert sim.stats.header_trickles == 1
    assert report.retries == 1  # the trickled answer was abandoned, not waited for


async def test_a_chunked_206_running_past_its_range_is_refused_not_cut(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.chunked_overrun = 5000
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path)
    assert report.retries == 1 and sim.faults.chunked_overrun is None  # refused once
    sim.faults.chunked_overrun, sim.faults.chunked_overrun_count = 5000, -1
    report = await run(sim, MYSQL_FULL, tmp_path / "again", retries=1)
    assert report.exit_code == 1
    failed = {o.name: o.detail or "" for o in report.failed}
    assert failed and all("without a Content-Length" in d for d in failed.values())
    assert not any((tmp_path / "again" / name).exists() for name in failed)


async def test_file_fully_on_disk_but_not_in_place_is_finished_on_rerun(
    sim: Simulator, tmp_path: Path
) -> None:
    """The move into place failed (a folder squats the final name): every byte is on disk
    and journaled. Once the obstacle is gone, the rerun only has to finish the file."""
    big = biggest(sim)
    (tmp_path / big.name).mkdir()
    (tmp_path / big.name / "x").write_text("x")
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 6  # the folder cannot take the file: a storage problem
    assert "Is a directory" in (report.failed[0].detail or "")
    (tmp_path / big.name / "x").unlink()
    (tmp_path / big.name).rmdir()
    sent = sim.stats.object_bytes_sent
    report = await asyncio.wait_for(run(sim, MYSQL_FULL, tmp_path), 20)
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path)
    assert sim.stats.object_bytes_sent == sent  # nothing fetched again


async def test_ranges_queued_behind_a_one_stream_fallback_do_not_spin(
    sim: Simulator, tmp_path: Path
) -> None:
    """Ranges wait out 503s while the server starts ignoring Range: the one stream covers
    them, and the file must finish instead of re-queueing ranges already on disk."""
    big = biggest(sim)
    sim.faults.throttle_bps = 400 * KIB

    async def flip() -> None:
        while sim.stats.object_requests < 1:
            await asyncio.sleep(0.005)
        sim.faults.error_status, sim.faults.error_count, sim.faults.retry_after = 503, 7, 1.0
        while sim.stats.object_requests < 8:
            await asyncio.sleep(0.005)
        sim.faults.ignore_range, sim.faults.throttle_bps = True, None

    flipper = asyncio.create_task(flip())
    report = await asyncio.wait_for(
        run(
            sim,
            MYSQL_FULL,
            tmp_path,
            selection=Selection(include=(big.name,)),
            jobs=1,
            per_file=8,
            connections=8,
            chunk_size=256 * KIB,
            backoff_base=0.5,
            backoff_max=1.0,
        ),
        30,
    )
    await flipper
    assert report.exit_code == 0, [o.detail for o in report.failed]
    assert_exact(sim, MYSQL_FULL, tmp_path, [big.name])


async def test_crc64_of_a_whole_object_answer_is_checked(sim: Simulator, tmp_path: Path) -> None:
    """A multipart upload's ETag is no MD5, but a whole-object answer carries the object's
    CRC-64: a byte flipped in transit is caught by it, and the manifest records it."""
    (f,) = sim.backups[MYSQL_MULTIPART].files
    sim.faults.corrupt_at = 12345
    report = await run(sim, MYSQL_MULTIPART, tmp_path)
    assert report.exit_code == 4
    assert "CRC-64" in (report.failed[0].detail or "")
    assert not (tmp_path / f.name).exists()
    sim.faults.corrupt_at = None
    report = await run(sim, MYSQL_MULTIPART, tmp_path)
    assert report.exit_code == 0
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    crc = manifest["files"][0]["crc64"]
    assert crc == f"{sim.store.digests(MYSQL_MULTIPART, f.name).crc64:016x}"


async def test_a_clock_far_off_the_api_is_corrected_for_signing(
    sim: Simulator, tmp_path: Path
) -> None:
    """Our clock is an hour behind the cloud's: the gateway refuses the first signature as
    expired; the client takes the server's time from its Date header and signs again, once,
    and the links' expiry is judged on the server's clock too."""
    sim.faults.server_clock_offset = 3600
    sim.faults.link_lifetime = 30
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path)
    assert sim.stats.backup_files_calls == 2  # the refused one, and the corrected one
    assert report.resolutions == 0


async def test_connections_are_added_while_each_one_is_slow(sim: Simulator, tmp_path: Path) -> None:
    """Starts with per_file connections; when every one is busy and capped (as over a real
    network), the engine allows more, up to the budget."""
    big = biggest(sim)
    sim.faults.throttle_bps = 128 * KIB
    report = await run(
        sim, MYSQL_FULL, tmp_path, selection=Selection(include=(big.name,)), jobs=1,
        per_file=2, connections=8, chunk_size=128 * KIB,
    )  # fmt: skip
    assert report.exit_code == 0
    assert_exact(sim, MYSQL_FULL, tmp_path, [big.name])
    assert sim.stats.object_max_concurrent > 2
    assert sim.stats.object_max_concurrent <= 8


async def test_manifest_keeps_files_of_earlier_selections(sim: Simulator, tmp_path: Path) -> None:
    """One database today, another tomorrow, into the same folder: the manifest lists both,
    as long as the first one's file is still in place."""
    await run(sim, SQLSERVER_DB, tmp_path, selection=Selection(databases=("sales",)))
    await run(sim, SQLSERVER_DB, tmp_path, selection=Selection(databases=("hr",)))
    listed = {
        e["database_name"] for e in json.loads((tmp_path / MANIFEST_NAME).read_text())["files"]
    }
    assert listed == {"sales", "hr"}
    sales = next(f for f in sim.backups[SQLSERVER_DB].files if f.database_name == "sales")
    (tmp_path / sales.name).unlink()
    await run(sim, SQLSERVER_DB, tmp_path, selection=Selection(databases=("hr",)))
    listed = {
        e["database_name"] for e in json.loads((tmp_path / MANIFEST_NAME).read_text())["files"]
    }
    assert listed == {"hr"}


# ------------------------------------------------------------------ how well each file verified


def integrity_of(report: RunReport, out: Path) -> tuple[dict[str, object], dict[str, object]]:
    """Each file's integrity level as the --json report and the manifest say it."""
    reported = {f["name"]: f["integrity"] for f in report.to_json()["files"]}
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    return reported, {e["name"]: e["integrity"] for e in manifest["files"]}


async def test_each_file_says_how_well_it_was_verified(sim: Simulator, tmp_path: Path) -> None:
    """In ranges, a multipart upload's file meets no checksum the store computed (its ETag is
    no MD5, ranged answers carry no whole-object CRC-64): size-only, in the report and the
    manifest. Files with MD5 ETags are compared with them: server-checksum."""
    report = await run(sim, MYSQL_MULTIPART, tmp_path / "multipart", chunk_size=1 * MIB)
    assert report.exit_code == 0
    reported, listed = integrity_of(report, tmp_path / "multipart")
    names = {f.name for f in sim.backups[MYSQL_MULTIPART].files}
    assert reported == listed == dict.fromkeys(names, "size-only")
    assert report.size_only == 1 and report.to_json()["size_only"] == 1

    report = await run(sim, MYSQL_FULL, tmp_path / "full", chunk_size=1 * MIB)
    assert report.exit_code == 0
    reported, listed = integrity_of(report, tmp_path / "full")
    # A zero-byte file has no bytes to compare (the store's 416 carries no ETag): size-only.
    want = {
        f.name: "server-checksum" if f.size else "size-only" for f in sim.backups[MYSQL_FULL].files
    }
    assert "size-only" in want.values() and "server-checksum" in want.values()
    assert reported == listed == want
    assert report.size_only == 1

    # A rerun skips every file, and each keeps the level it verified at.
    again = await run(sim, MYSQL_MULTIPART, tmp_path / "multipart")
    assert again.outcomes and all(o.skipped for o in again.outcomes)
    reported, listed = integrity_of(again, tmp_path / "multipart")
    names = {f.name for f in sim.backups[MYSQL_MULTIPART].files}
    assert reported == listed == dict.fromkeys(names, "size-only")


async def test_a_whole_object_answer_makes_a_multipart_file_server_checked(
    sim: Simulator, tmp_path: Path
) -> None:
    """The same multipart file in one answer (it fits in one chunk) comes with the store's
    CRC-64 of the whole object, and the bytes are compared with it."""
    report = await run(sim, MYSQL_MULTIPART, tmp_path, chunk_size=8 * MIB)
    assert report.exit_code == 0
    reported, listed = integrity_of(report, tmp_path)
    names = {f.name for f in sim.backups[MYSQL_MULTIPART].files}
    assert reported == listed == dict.fromkeys(names, "server-checksum")


async def test_a_record_without_integrity_is_size_only(sim: Simulator, tmp_path: Path) -> None:
    """A file finished by an earlier version (its record does not say how it verified) is
    skipped as before, and listed as size-only: nothing says more."""
    await run(sim, MYSQL_FULL, tmp_path)
    for path in (tmp_path / STATE_DIR / "journal").iterdir():
        rec = json.loads(path.read_text())
        assert rec.pop("integrity") == ("server-checksum" if rec["size"] else "size-only")
        path.write_text(json.dumps(rec))
    report = await run(sim, MYSQL_FULL, tmp_path)
    assert report.exit_code == 0 and all(o.skipped for o in report.outcomes)
    reported, listed = integrity_of(report, tmp_path)
    names = {f.name for f in sim.backups[MYSQL_FULL].files}
    assert reported == listed == dict.fromkeys(names, "size-only")


async def test_a_206_with_a_lying_content_length_is_retried(sim: Simulator, tmp_path: Path) -> None:
    """A body longer than its Content-Range (a proxy's mistake, or another range's bytes) is
    not cut to size and kept: the answer is retried, and the file is exact."""
    big = biggest(sim)
    sim.faults.fault_files = {big.name}
    sim.faults.length_lie = 1000
    report = await run(
        sim, MYSQL_FULL, tmp_path, selection=Selection(include=(big.name,)), chunk_size=1 * MIB
    )
    assert report.exit_code == 0, [o.detail for o in report.failed]
    assert sim.faults.length_lie is None  # it fired
    assert report.retries >= 1
    assert_exact(sim, MYSQL_FULL, tmp_path, [big.name])


@pytest.mark.parametrize("lie", [1000, -1000])
async def test_a_206_that_always_lies_fails_the_file(
    sim: Simulator, tmp_path: Path, lie: int
) -> None:
    big = biggest(sim)
    sim.faults.fault_files = {big.name}
    sim.faults.length_lie, sim.faults.length_lie_count = lie, -1
    report = await run(sim, MYSQL_FULL, tmp_path, retries=2, chunk_size=1 * MIB)
    assert report.exit_code == 1
    assert [o.name for o in report.failed] == [big.name]
    assert "Content-Length" in (report.failed[0].detail or "")
    assert not (tmp_path / big.name).exists()
    assert not (tmp_path / MANIFEST_NAME).exists()


async def test_object_gets_ask_for_identity_and_refuse_a_coded_body(
    sim: Simulator, tmp_path: Path
) -> None:
    """Accept-Encoding: identity on every object GET; an answer that says its body is coded
    anyway is never written: retried, and once it keeps coming the file fails."""
    big = biggest(sim)
    sim.faults.fault_files = {big.name}
    sim.faults.encoding = "gzip"  # once: retried
    report = await run(sim, MYSQL_FULL, tmp_path / "once")
    assert report.exit_code == 0 and report.retries >= 1
    assert sim.faults.encoding is None  # it fired
    assert_exact(sim, MYSQL_FULL, tmp_path / "once")
    sent = {r.accept_encoding for r in sim.stats.object_requests_log}
    assert sent == {"identity"}

    sim.faults.encoding, sim.faults.encoding_count = "gzip", -1
    report = await run(sim, MYSQL_FULL, tmp_path / "always", retries=2)
    assert [o.name for o in report.failed] == [big.name]
    assert "Content-Encoding gzip" in (report.failed[0].detail or "")
    assert not (tmp_path / "always" / big.name).exists()
    assert not (tmp_path / "always" / MANIFEST_NAME).exists()
