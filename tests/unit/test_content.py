"""The content checkers against streams written by real tools (mbstream, tar, gzip) and
against hostile bytes: a verdict in one line, never an exception, never unbounded memory."""

from __future__ import annotations

import gzip
import io
import random
import shutil
import struct
import subprocess
import tarfile
import zlib

import pytest

from downloader.content import checker_for
from downloader.content.binlog import BinlogChecker
from downloader.content.mtf import xor_words
from downloader.results import ContentVerdict

needs_mbstream = pytest.mark.skipif(shutil.which("mbstream") is None, reason="no mbstream")


def check(data: bytes, name: str = "f", *, pieces: int | None = None) -> ContentVerdict:
    c = checker_for(name, len(data))
    if pieces is None:
        c.feed(data)
    else:
        rnd = random.Random(pieces)
        at = 0
        while at < len(data):
            n = rnd.choice((1, 3, 13, 512, 4096, 65536))
            c.feed(memoryview(data)[at : at + n])
            at += n
    return c.finish()


@pytest.fixture(scope="module")
def xb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real stream: mbstream -c over the members a restore needs and a 21 MB data
    file (three chunks)."""
    if shutil.which("mbstream") is None:
        pytest.skip("no mbstream (Debian's mariadb-backup)")
    d = tmp_path_factory.mktemp("xb")
    (d / "backup-my.cnf").write_text("[mysqld]\ninnodb_page_size=16384\n")
    (d / "xtrabackup_checkpoints").write_text("backup_type = full-backuped\n")
    (d / "db").mkdir()
    (d / "db" / "t1.ibd").write_bytes(random.Random(1).randbytes(21_000_000))
    (d / "empty").write_bytes(b"")
    out = subprocess.run(
        ["mbstream", "-c", "backup-my.cnf", "xtrabackup_checkpoints", "db/t1.ibd", "empty"],
        cwd=d,
        check=True,
        capture_output=True,
    ).stdout
    return out


def chunks(data: bytes) -> list[tuple[int, bytes, str, int, int]]:
    """(start, type, path, payload start, payload end) of every chunk of a good stream."""
    out = []
    at = 0
    while at < len(data):
        ctype = data[at + 9 : at + 10]
        (plen,) = struct.unpack_from("<I", data, at + 10)
        path = data[at + 14 : at + 14 + plen].decode()
        p = at + 14 + plen
        if ctype == b"E":
            out.append((at, ctype, path, p, p))
            at = p
            continue
        (length,) = struct.unpack_from("<Q", data, p)
        out.append((at, ctype, path, p + 20, p + 20 + length))
        at = p + 20 + length
    return out


def test_a_real_stream_is_ok_in_pieces_of_any_size(xb: bytes) -> None:
    whole = check(xb, "x_full_1.qp")
    assert whole.ok, whole.detail()
    assert whole.format == "xbstream"
    assert "4 members" in whole.checked and "holds checkpoints and backup-my.cnf" in whole.checked
    assert check(xb, pieces=7) == whole


def test_a_flipped_bit_names_the_chunk_and_its_member(xb: bytes) -> None:
    _start, _, _path, pay, end = [c for c in chunks(xb) if c[2] == "db/t1.ibd"][1]
    bad = bytearray(xb)
    bad[pay + 1000] ^= 0x10
    v = check(bytes(bad), pieces=3)
    assert v.damaged
    (d,) = v.damage
    assert (d.start, d.end, d.member, d.local) == (pay, end, "db/t1.ibd", True)
    assert "CRC-32" in d.what
    assert "db/t1.ibd" in v.detail() and str(pay) in v.detail()


def test_a_truncated_stream_is_damaged(xb: bytes) -> None:
    v = check(xb[: len(xb) // 2])
    assert v.damaged and "truncated" in v.damage[0].what


def test_a_member_with_no_end_chunk(xb: bytes) -> None:
    start, _, _path, _pay, end = next(c for c in chunks(xb) if c[1] == b"E" and c[2] == "db/t1.ibd")
    v = check(xb[:start] + xb[end:])
    assert v.damaged
    assert v.damage[0].member == "db/t1.ibd" and "no end chunk" in v.damage[0].what


def test_a_hole_between_chunks(xb: bytes) -> None:
    cs = [c for c in chunks(xb) if c[2] == "db/t1.ibd" and c[1] == b"P"]
    start, _, _, _, end = cs[1]
    v = check(xb[:start] + xb[end:])
    assert v.damaged and "a hole" in v.damage[0].what


def header(path: bytes, length: int, ctype: bytes = b"P", pathlen: int | None = None) -> bytes:
    n = len(path) if pathlen is None else pathlen
    return b"XBSTCK01\0" + ctype + struct.pack("<I", n) + path + struct.pack("<QQI", length, 0, 0)


def test_a_chunk_whose_length_runs_past_the_file() -> None:
    data = header(b"ibdata1", 1 << 30) + b"x" * 100
    v = check(data)
    assert v.damaged and "past the end of the file" in v.damage[0].what


@pytest.mark.parametrize(
    "data",
    [
        header(b"a" * 100_000, 5) + b"hello",  # a path of 100 KB
        header(b"x", 2**63) + b"y" * 64,  # a length of 2^63
        header(b"x", 0, pathlen=2**32 - 1),
        b"XBSTCK01\0Q\1\0\0\0x" + b"\0" * 40,  # an unknown chunk type
        b"XBSTCK01" + bytes(range(256)) * 8,
    ],
)
def test_hostile_chunks_give_one_verdict(data: bytes) -> None:
    for pieces in (None, 5):
        v = check(data, pieces=pieces)
        assert v.damaged
        assert len(v.detail().splitlines()) == 1
    assert len(v.detail()) < 300


def test_unknown_bytes_are_not_checked() -> None:
    v = check(random.Random(2).randbytes(5000), "x.qp")
    assert v.status == "not-checked" and v.format is None
    assert check(b"", "empty.qp").status == "not-checked"


# --- PostgreSQL: tar and gzip -------------------------------------------------------------


@pytest.fixture(scope="module")
def targz(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A base backup archive written by GNU tar and gzip."""
    d = tmp_path_factory.mktemp("pg")
    (d / "base").mkdir()
    (d / "base" / "backup_label").write_text("START WAL LOCATION: 0/2000028\n")
    (d / "base" / "16384").write_bytes(random.Random(3).randbytes(400_000))
    (d / "base" / "pg_wal").mkdir()
    subprocess.run(["tar", "-czf", str(d / "b.tar.gz"), "-C", str(d), "base"], check=True)
    return (d / "b.tar.gz").read_bytes()


def test_a_real_tar_gz_is_ok(targz: bytes) -> None:
    v = check(targz, "x_full.tar.gz", pieces=11)
    assert v.ok, v.detail()
    assert v.format == "tar.gz" and "holds backup_label" in v.checked
    assert "1 members" in v.checked and "4 tar entries" in v.checked


def test_two_gzip_members_and_a_plain_tar(targz: bytes) -> None:
    raw = gzip.decompress(targz)
    half = len(raw) // 2
    two = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    v = check(two)
    assert v.ok and "2 members" in v.checked
    assert check(raw, "x.tar").ok


def test_a_flipped_bit_in_the_deflate_data(targz: bytes) -> None:
    bad = bytearray(targz)
    bad[len(bad) // 2] ^= 0x01
    v = check(bytes(bad))
    assert v.damaged
    assert v.damage[0].start == 0 and v.damage[0].end <= len(bad)


def test_a_truncated_tar_gz(targz: bytes) -> None:
    assert check(targz[:-100]).damaged
    raw = gzip.decompress(targz)
    v = check(gzip.compress(raw[:10240]))  # gzip whole, the tar inside cut
    assert v.damaged and "tar" in v.damage[0].what


def test_a_tar_header_that_fails_its_checksum(targz: bytes) -> None:
    raw = bytearray(gzip.decompress(targz))
    raw[10] ^= 0x01  # in the first header's name
    v = check(gzip.compress(bytes(raw)))
    assert v.damaged and "checksum" in v.damage[0].what


def test_hostile_gzip() -> None:
    # A header name that never ends: one verdict.
    v = check(b"\x1f\x8b\x08\x08" + b"\0" * 6 + b"n" * 200_000)
    assert v.damaged and "longer than" in v.damage[0].what
    # 50 MB of zeros from 50 KB (an empty tar, as far as tar goes): inflated 1 MiB at a
    # time, never held whole.
    bomb = check(gzip.compress(b"\0" * 50_000_000))
    assert bomb.ok and "0 tar entries" in bomb.checked


def test_python_tarfile_archives_with_long_names() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("d/" + "n" * 300)
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    assert check(buf.getvalue()).ok


# --- binlogs and .bak ----------------------------------------------------------------------


def event(kind: int, body: bytes, pos: int, checksum: bool) -> bytes:
    size = 19 + len(body) + (4 if checksum else 0)
    head = struct.pack("<IBIIIH", 1716220800, kind, 1, size, pos + size, 0)
    ev = head + body
    return ev + struct.pack("<I", zlib.crc32(ev)) if checksum else ev


def binlog(checksum: bool = True, events: int = 5) -> bytes:
    fde_body = struct.pack("<H", 4) + b"8.0.36".ljust(50, b"\0") + b"\0" * 4 + bytes([19])
    fde_body += bytes(40) + bytes([1 if checksum else 0])
    out = b"\xfebin" + event(15, fde_body, 4, checksum)
    for i in range(events):
        out += event(2, f"INSERT INTO t VALUES ({i})".encode() * 10, len(out), checksum)
    return out


def test_binlog_events_and_their_checksums() -> None:
    good = binlog()
    v = check(good, "mysql-bin.000001", pieces=2)
    assert v.ok and "6 events" in v.checked and "CRC-32 of every event" in v.checked
    bad = bytearray(good)
    bad[-30] ^= 0x04
    v = check(bytes(bad))
    assert v.damaged and v.damage[0].local and v.damage[0].end == len(good)
    assert check(good[:-7]).damaged
    plain = check(binlog(checksum=False))
    assert plain.ok and "no event checksums" in plain.checked


def test_binlog_hostile_event_size() -> None:
    data = binlog()[:4] + struct.pack("<IBIIIH", 0, 15, 1, 2**32 - 1, 0, 0) + b"x" * 64
    c = BinlogChecker(len(data))
    c.feed(data)
    assert c.finish().damaged


def test_mtf_tape_header() -> None:
    head = b"TAPE" + bytes(range(4, 50))
    good = head + struct.pack("<H", xor_words(head)) + b"\0" * 1000
    assert check(good, "x.bak").ok
    bad = bytearray(good)
    bad[20] ^= 1
    assert check(bytes(bad)).damaged
