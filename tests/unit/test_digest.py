"""downloader.disk.digest: CRC-64 combination and the piece log that lets the hasher skip
re-reading bytes."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from downloader.disk.digest import Crc64, PieceLog, crc64, crc64_combine


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_crc64_combine_equals_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)


def test_crc64_combine_across_more_than_the_zero_buffer() -> None:
    a, b = bytes(range(256)) * 3, bytes(reversed(range(256))) * (9 * 1024 + 7)  # b > 2 MiB
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)


@given(
    st.integers(1, 400),
    st.lists(st.tuples(st.integers(0, 399), st.integers(1, 120), st.booleans()), max_size=40),
    st.randoms(use_true_random=False),
)
def test_pieces_and_read_back_give_the_file_crc(
    size: int, writes: list[tuple[int, int, bool]], rnd: random.Random
) -> None:
    """Connections write runs of bytes in any order, overlapping (split ranges), some
    continuing their own piece; the hasher folds pieces at the prefix and reads back what no
    piece describes. The CRC always equals the CRC of the file."""
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    log = PieceLog()
    written = bytearray(size)
    covered = [False] * size
    crc = Crc64()
    hashed = 0
    pieces: dict[int, object] = {}

    def hash_prefix() -> None:
        nonlocal hashed
        prefix = hashed
        while prefix < size and covered[prefix]:
            prefix += 1
        while hashed < prefix:
            piece = log.take(hashed)
            if piece is not None:
                crc.append(piece.crc, piece.end - piece.start)
                hashed = piece.end
                continue
            nearest = log.next_start(hashed)
            limit = prefix if nearest is None else min(prefix, nearest)
            crc.update(bytes(written[hashed:limit]))
            hashed = limit

    for conn, (start, length, same_connection) in enumerate(writes):
        start %= size
        end = min(size, start + length)
        key = 0 if same_connection else conn + 1
        piece = pieces.get(key)
        pieces[key] = log.wrote(piece, start, data[start:end])  # type: ignore[arg-type]
        written[start:end] = data[start:end]
        covered[start:end] = [True] * (end - start)
        if rnd.random() < 0.5:
            hash_prefix()
    written[:] = data  # the rest arrives without pieces (as if from an earlier run)
    covered = [True] * size
    hash_prefix()
    assert hashed == size
    assert crc.value == crc64(data)
