"""SQL Server's ``.bak``: Microsoft Tape Format. The file starts with a ``TAPE`` descriptor
block whose 52-byte common header ends in a checksum, the 16-bit XOR of its first 25
words (MTF 1.00a, "Common Block Header").

Only that header is checked: the streams and blocks after it vary between SQL Server
versions, and a check that misread a good backup as damaged would be worse than none. The
verdict says so (``checked``).
"""

from __future__ import annotations

import struct

from downloader.results import CONTENT_DAMAGED, CONTENT_OK, ContentVerdict, Damage

MAGIC = b"TAPE"
FORMAT = "mtf"
HEADER = 52


def xor_words(data: bytes) -> int:
    value = 0
    for (word,) in struct.iter_unpack("<H", data):
        value ^= word
    return value


class MtfChecker:
    def __init__(self, size: int | None = None) -> None:
        self.head = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if len(self.head) < HEADER:
            self.head += memoryview(data).cast("B")[: HEADER - len(self.head)]

    def finish(self) -> ContentVerdict:
        checked = "mtf: the TAPE descriptor block's header checksum"
        head = bytes(self.head)
        if len(head) < HEADER:
            damage = Damage(0, max(len(head), 1), "the file ends inside the TAPE block (truncated)")
            return ContentVerdict(CONTENT_DAMAGED, FORMAT, checked, (damage,))
        (stored,) = struct.unpack("<H", head[50:52])
        if xor_words(head[:50]) != stored:
            damage = Damage(
                0, HEADER, "the TAPE block's header checksum does not match", local=True
            )
            return ContentVerdict(CONTENT_DAMAGED, FORMAT, checked, (damage,))
        return ContentVerdict(CONTENT_OK, FORMAT, checked)
