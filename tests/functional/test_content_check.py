"""The content check end to end against the simulator's content-shaped backups: a real
xbstream and a real tar.gz, faults that damage only the transfer or the stored bytes."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from downloader.content import checker_for
from downloader.disk.storage import MANIFEST_NAME
from downloader.disk.verify import verify_folder
from downloader.errors import ContentDamagedError
from downloader.sim import Simulator
from downloader.sim.catalog import SHAPED_MYSQL, SHAPED_PG
from downloader.sim.shapes import _HEAD, PAYLOAD, XbLayout
from tests.functional.test_download import assert_exact, run

CHUNK = 1024 * 1024  # ranges of 1 MiB: the 6 MiB file arrives over several connections


def big(sim: Simulator) -> str:
    return sim.backups[SHAPED_MYSQL].files[0].name


def payload_offset(sim: Simulator, k: int) -> int:
    """A byte inside the payload of ibdata1's chunk ``k``."""
    f = sim.backups[SHAPED_MYSQL].files[0]
    layout = XbLayout(sim.store.seed(SHAPED_MYSQL, f.name), f.size)
    return layout.chunk_at(k) + _HEAD + 1000


async def test_shaped_backups_are_checked_and_called_ok(sim: Simulator, tmp_path: Path) -> None:
    report = await run(sim, SHAPED_MYSQL, tmp_path, chunk_size=CHUNK, per_file=4)
    assert report.exit_code == 0
    assert_exact(sim, SHAPED_MYSQL, tmp_path)
    for o in report.outcomes:
        assert o.content is not None and o.content.ok and o.content.format == "xbstream"
    files = report.to_json()["files"]
    assert all(f["content"]["status"] == "ok" for f in files)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert {e["content"]["status"] for e in manifest["files"]} == {"ok"}
    assert "holds checkpoints and backup-my.cnf" in manifest["files"][0]["content"]["checked"]
    pg = await run(sim, SHAPED_PG, tmp_path / "pg")
    assert pg.exit_code == 0
    (o,) = pg.outcomes
    assert o.content is not None and o.content.format == "tar.gz"
    assert "backup_label" in o.content.checked


async def test_a_flipped_bit_in_transit_is_healed_with_exact_bytes(
    sim: Simulator, tmp_path: Path
) -> None:
    name = big(sim)
    sim.faults.fault_files = {name}
    sim.faults.corrupt_at = payload_offset(sim, 3)
    sim.faults.corrupt_count = 1  # the first answer only: a transit error
    report = await run(sim, SHAPED_MYSQL, tmp_path, chunk_size=CHUNK, per_file=4)
    assert report.exit_code == 0, [o.detail for o in report.outcomes]
    assert_exact(sim, SHAPED_MYSQL, tmp_path)  # byte for byte, its CRC-64 the store's
    o = next(o for o in report.outcomes if o.name == name)
    assert o.content is not None and o.content.ok and o.content.healed == 1
    assert o.integrity == "size-only"  # multipart: the store vouches for nothing
    # The range fetched again carried If-Match and named the damaged chunk's bytes.
    again = [r for r in sim.stats.object_requests_log if r.name == name][-1]
    assert again.if_match == sim.etag(SHAPED_MYSQL, name)
    start = payload_offset(sim, 3) - 1000
    assert again.range == f"bytes={start}-{start + PAYLOAD - 1}"


async def test_a_damaged_source_is_refused_with_exit_4_and_kept_apart(
    sim: Simulator, tmp_path: Path
) -> None:
    name = big(sim)
    sim.store.damage(SHAPED_MYSQL, name, payload_offset(sim, 2))
    report = await run(sim, SHAPED_MYSQL, tmp_path, chunk_size=CHUNK, per_file=4)
    assert report.exit_code == 4
    (bad,) = report.failed
    assert bad.name == name and isinstance(bad.error, ContentDamagedError)
    assert bad.error.member == "ibdata1"
    assert bad.error.offset == payload_offset(sim, 2) - 1000
    assert "source is damaged" in str(bad.error) and "another backup" in str(bad.error)
    assert bad.content is not None and bad.content.damaged
    # Never under its own name, no manifest presents the backup as good; its bytes (the
    # store's, exactly) are kept apart.
    assert not (tmp_path / name).exists()
    assert not (tmp_path / MANIFEST_NAME).exists()
    kept = tmp_path / f"{name}.damaged"
    assert kept.read_bytes() == sim.expected_bytes(SHAPED_MYSQL, name)
    # Fetched three times in all: the first time, then twice again with the same bytes.
    ranges = [r.range for r in sim.stats.object_requests_log if r.name == name]
    start = payload_offset(sim, 2) - 1000
    assert ranges.count(f"bytes={start}-{start + PAYLOAD - 1}") == 2


async def test_verify_re_checks_the_content(sim: Simulator, tmp_path: Path) -> None:
    report = await run(sim, SHAPED_MYSQL, tmp_path)
    assert report.exit_code == 0
    _, checks = verify_folder(tmp_path, checker_for=checker_for)
    assert all(c.ok and c.content is not None and c.content.ok for c in checks)
    # A chunk CRC that no longer holds, in a file whose checksums were recorded from
    # these very bytes (as if the source had been damaged before the content check).
    name = big(sim)
    path = tmp_path / name
    data = bytearray(path.read_bytes())
    data[payload_offset(sim, 1)] ^= 0x01
    path.write_bytes(data)
    manifest_path = tmp_path / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    from downloader.disk.hashing import hash_file

    for e in manifest["files"]:
        if e["name"] == name:
            e["crc64"] = f"{hash_file(path).crc64.value:016x}"
    manifest_path.write_text(json.dumps(manifest))
    _, checks = verify_folder(tmp_path, checker_for=checker_for)
    bad = next(c for c in checks if c.name == name)
    assert not bad.ok and "content damaged" in bad.detail and "ibdata1" in bad.detail


@pytest.mark.skipif(shutil.which("mbstream") is None, reason="no mbstream")
def test_the_simulator_writes_what_mbstream_extracts(tmp_path: Path) -> None:
    sim = Simulator()
    f = sim.backups[SHAPED_MYSQL].files[0]
    data = sim.expected_bytes(SHAPED_MYSQL, f.name)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["mbstream", "-x", "-C", str(out)], input=data, check=True)
    assert (out / "xtrabackup_checkpoints").read_text().startswith("backup_type = full")
    assert (out / "backup-my.cnf").exists()
    ibdata = (out / "ibdata1").read_bytes()
    layout = XbLayout(sim.store.seed(SHAPED_MYSQL, f.name), f.size)
    assert len(ibdata) == (layout.chunks - 1) * PAYLOAD + layout.last
    # And a chunk header the simulator wrote is what the format says.
    magic, _, ctype, plen = struct.unpack_from("<8sBcI", data, layout.chunk_at(0))
    assert (magic, ctype, plen) == (b"XBSTCK01", b"P", 7)
