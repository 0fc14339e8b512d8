"""downloader.storage.safe_relative_path: which file names may land on disk."""

from __future__ import annotations

import pytest

from downloader.errors import UnsafeNameError
from downloader.storage import safe_relative_path


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
        "a/" + "x" * 300,
    ],
)
def test_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_relative_path(name)


def test_safe_names_keep_subfolders() -> None:
    assert str(safe_relative_path("db1/full.bak")) == "db1/full.bak"
    assert str(safe_relative_path("a..b.qp")) == "a..b.qp"
