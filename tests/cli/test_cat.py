"""``rds-backup cat``: the real command in subprocesses, piped into real consumer processes,
against the simulator (throttled connections, short-lived links, resets, a bit flip)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import cli, env_for, server  # noqa: F401  (server is a fixture)

from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_FULL, MYSQL_MULTIPART

KIB = 1024
MIB = 1024 * KIB
SMALL = ["--chunk-size", "256K", "--window", "1M"]  # many ranges, a window they overflow

HASHER = (
    "import hashlib, sys\n"
    "h = hashlib.sha256()\n"
    "n = 0\n"
    "while block := sys.stdin.buffer.read(65536):\n"
    "    h.update(block); n += len(block)\n"
    "print(n, h.hexdigest())\n"
)
SLOW_READER = (
    "import hashlib, sys, time\n"
    "h = hashlib.sha256()\n"
    "while block := sys.stdin.buffer.read(32768):\n"
    "    h.update(block); time.sleep(0.002)\n"
    "print(h.hexdigest())\n"
)


def biggest(sim: Simulator, backup_id: str = MYSQL_FULL) -> str:
    return max(sim.backups[backup_id].files, key=lambda f: f.size).name


def piped(
    sim: Simulator, args: list[str], consumer: str, timeout: float = 60
) -> tuple[int, str, str]:
    """``rds-backup cat ARGS | python -c CONSUMER``: (cat's exit code, its stderr, the
    consumer's stdout)."""
    cat = subprocess.Popen(
        [sys.executable, "-m", "downloader", "cat", *args],
        env=env_for(sim),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", consumer], stdin=cat.stdout, stdout=subprocess.PIPE
    )
    assert cat.stdout is not None and cat.stderr is not None
    cat.stdout.close()  # the consumer holds the pipe now: its exit is cat's EPIPE
    out, _ = reader.communicate(timeout=timeout)
    err = cat.stderr.read().decode()
    return cat.wait(timeout=timeout), err, out.decode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_hashing_consumer_gets_exactly_the_object(server: Simulator) -> None:  # noqa: F811
    name = biggest(server)
    code, err, out = piped(server, [MYSQL_FULL, name, *SMALL], HASHER)
    data = server.expected_bytes(MYSQL_FULL, name)
    assert code == 0, err
    assert out.split() == [str(len(data)), sha(data)]
    assert "checked against the object store's checksum" in err  # the ETag is an MD5
    ranges = [r for r in server.stats.object_requests_log if r.name == name]
    assert len(ranges) >= 12  # fetched in ranges, not one stream
    assert all(r.if_match for r in ranges[1:])


def test_a_slow_consumer_sets_the_pace(server: Simulator) -> None:  # noqa: F811
    name = biggest(server)
    code, err, out = piped(server, [MYSQL_FULL, name, *SMALL, "-x", "4"], SLOW_READER)
    assert code == 0, err
    assert out.strip() == sha(server.expected_bytes(MYSQL_FULL, name))


def test_a_consumer_that_closes_early_ends_the_run_at_once(server: Simulator) -> None:  # noqa: F811
    name = biggest(server)
    code, err, _ = piped(server, [MYSQL_FULL, name, *SMALL], "import sys; sys.stdin.read(1000)")
    assert code == 1
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert lines and "consumer closed the pipe" in lines[-1]
    # The bytes it was handed, not 0: at least the 1000 it read (a pipe takes more).
    taken = int(re.search(r"after (\d+) bytes", lines[-1])[1])  # type: ignore[index]
    assert taken >= 1000
    assert "Traceback" not in err


def test_links_renewed_and_resets_retried_mid_stream(server: Simulator) -> None:  # noqa: F811
    name = biggest(server)
    server.faults.link_lifetime = 1.0
    server.faults.throttle_bps = 384 * KIB  # per answer: about 2 s in all, links live 1 s
    server.faults.reset_after_bytes = 100 * KIB
    server.faults.reset_count = 3
    code, err, out = piped(server, [MYSQL_FULL, name, *SMALL, "-x", "2"], HASHER)
    assert code == 0, err
    assert out.split()[1] == sha(server.expected_bytes(MYSQL_FULL, name))
    assert server.stats.resets == 3
    assert server.stats.backup_files_calls >= 2  # renewed while streaming


def test_a_bit_flipped_in_transit_is_exit_4_and_says_discard(server: Simulator) -> None:  # noqa: F811
    name = biggest(server)
    server.faults.corrupt_at = 1_000_000
    code, err, _ = piped(server, [MYSQL_FULL, name, *SMALL], HASHER)
    assert code == 4
    assert "discard" in err and "Traceback" not in err


def test_without_a_store_checksum_it_says_size_only(server: Simulator) -> None:  # noqa: F811
    name = biggest(server, MYSQL_MULTIPART)
    code, err, out = piped(server, [MYSQL_MULTIPART, name, *SMALL], HASHER)
    assert code == 0, err
    assert out.split()[1] == sha(server.expected_bytes(MYSQL_MULTIPART, name))
    assert "size-only" in err


def test_offset_resumes_an_interrupted_stream_into_a_file(
    server: Simulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    name = biggest(server)
    part = tmp_path / "part"
    with open(part, "wb") as fh:
        first = subprocess.Popen(
            [sys.executable, "-m", "downloader", "cat", MYSQL_FULL, name, *SMALL],
            env=env_for(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert first.stdout is not None
        fh.write(first.stdout.read(1_234_567))  # then the consumer goes away
        first.stdout.close()
        first.wait(timeout=30)
    offset = str(part.stat().st_size)
    with open(part, "ab") as fh:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "downloader",
                "cat",
                MYSQL_FULL,
                name,
                *SMALL,
                "--offset",
                offset,
            ],
            env=env_for(server),
            stdout=fh,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    assert second.returncode == 0, second.stderr
    assert part.read_bytes() == server.expected_bytes(MYSQL_FULL, name)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["x_full_1.qp"], "no file"),
        (["--offset", "99999999999"], "past the end"),
        (["--chunk-size", "4M", "--window", "1M"], "cannot exceed --window"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    server: Simulator,  # noqa: F811
    args: list[str],
    words: str,
) -> None:
    name = biggest(server)
    full = [MYSQL_FULL, *args] if args[0].endswith(".qp") else [MYSQL_FULL, name, *args]
    result = cli(["cat", *full], server)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_name_suggests_the_closest(server: Simulator) -> None:  # noqa: F811
    name = biggest(server)
    result = cli(["cat", MYSQL_FULL, name.replace("_1.qp", "_9.qp")], server)
    assert result.returncode == 2
    assert "did you mean" in result.stderr and name in result.stderr


def test_ctrl_c_exits_130(server: Simulator) -> None:  # noqa: F811
    name = biggest(server)
    server.faults.throttle_bps = 64 * KIB
    proc = subprocess.Popen(
        [sys.executable, "-m", "downloader", "cat", MYSQL_FULL, name, *SMALL],
        env=env_for(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), True)
    proc.stdout.read(64 * KIB)  # it is streaming
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        proc.stdout.read(64 * KIB)
    assert proc.wait(timeout=5) == 130


def test_cat_checks_the_content_it_streams(server: Simulator) -> None:  # noqa: F811
    from downloader.sim.catalog import SHAPED_MYSQL

    name = biggest(server, SHAPED_MYSQL)  # multipart: size-only without the content check
    code, err, out = piped(server, [SHAPED_MYSQL, name, *SMALL], HASHER)
    assert code == 0, err
    assert out.split()[1] == sha(server.expected_bytes(SHAPED_MYSQL, name))
    assert "content ok: xbstream" in err
    # A chunk that fails its CRC-32 in a stream no store checksum covers: exit 4, discard.
    server.faults.corrupt_at = 3 * 1024 * 1024 + 5000
    code, err, _ = piped(server, [SHAPED_MYSQL, name, *SMALL], HASHER)
    assert code == 4, err
    assert "content damaged" in err and "ibdata1" in err and "discard" in err
    assert "Traceback" not in err
