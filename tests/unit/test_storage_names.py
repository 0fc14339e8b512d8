"""downloader.disk.storage.safe_relative_path: which file names may land on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from downloader.disk.storage import NAME_MAX, PATH_MAX, check_names, safe_relative_path
from downloader.errors import UnsafeNameError


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "../x",
        "a/../../x",
        "/abs",
        "C:\\x",
        "c:x",
        "a\\b",
        "nul\x00",
        "bell\x07",
        "a//b",
        "./a",
        ".rds-backup/x",
        "rds-backup-manifest.json",
        "rds-backup-manifest.json/x",  # a folder where the manifest goes
        "a/" + "x" * 300,
        "a/" + "\u00e9" * 128,  # 128 characters, but 256 bytes in UTF-8
        "csi\x9b2J.qp",  # C1 controls, as refused as C0 ones
        "next\x85line.qp",
        "\x80",
        "evil\u202ekp.qp",  # right-to-left override: shows as "evilpq.pk"
        "a\u202a.qp",
        "a\u202d.qp",
        "a\u2066.qp",  # isolates
        "a\u2069.qp",
        "a\u200f.qp",  # the invisible marks
        "line\u2028break.qp",
        "lone\ud800.qp",  # no UTF-8 for it: would crash wherever it is encoded
    ],
)
def test_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_relative_path(name)


def test_refusal_names_the_character() -> None:
    with pytest.raises(UnsafeNameError) as info:
        safe_relative_path("evil\u202ekp.qp")
    assert "bidirectional control U+202E" in str(info.value)
    assert "\u202e" not in str(info.value)  # the name is shown escaped (repr)
    with pytest.raises(UnsafeNameError) as info:
        safe_relative_path("csi\x9b2J")
    assert "control character U+009B" in str(info.value)


def test_names_at_the_limits_are_kept() -> None:
    assert str(safe_relative_path("x" * NAME_MAX)) == "x" * NAME_MAX
    assert str(safe_relative_path("\u00e9" * 127)) == "\u00e9" * 127  # 254 bytes
    assert str(safe_relative_path("caf\u00e9/\u65e5\u672c.bak")) == "caf\u00e9/\u65e5\u672c.bak"


@pytest.mark.parametrize(
    "names",
    [
        ["a", "a/b"],
        ["a/b", "a"],  # in either order
        ["x.qp", "db/full.bak", "db/full.bak/inner"],
        ["d/e/f", "d/e/f/g/h"],
    ],
)
def test_a_file_that_another_needs_as_its_folder_is_refused(
    tmp_path: Path, names: list[str]
) -> None:
    with pytest.raises(UnsafeNameError) as info:
        check_names(tmp_path, names)
    assert "which the backup lists as a file" in str(info.value)


def test_folders_shared_by_files_are_fine(tmp_path: Path) -> None:
    check_names(tmp_path, ["a/b", "a/c", "a/d/e", "ab", "a.b/c", "b/a"])


def test_a_whole_path_over_path_max_is_refused(tmp_path: Path) -> None:
    base = len(os.fsencode(tmp_path)) + 1  # the folder and the slash after it
    room = PATH_MAX - 1 - base  # bytes a name may take: PATH_MAX counts the NUL
    components, rest = divmod(room - 1, 201)  # folders of 200 bytes and a slash, a file
    fits = "/".join(["d" * 200] * components + ["f" * (rest + 1)])
    assert len(fits.encode()) == room
    check_names(tmp_path, [fits])
    with pytest.raises(UnsafeNameError) as info:
        check_names(tmp_path, [fits + "g"])
    assert f"longer than {PATH_MAX - 1} bytes" in str(info.value)
    # Measured in UTF-8 bytes, not characters: one "f" becomes two bytes.
    with pytest.raises(UnsafeNameError):
        check_names(tmp_path, [fits[:-1] + "\u00e9"])


def test_safe_names_keep_subfolders() -> None:
    assert str(safe_relative_path("db1/full.bak")) == "db1/full.bak"
    assert str(safe_relative_path("a..b.qp")) == "a..b.qp"
