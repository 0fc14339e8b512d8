"""A download's exit code from its files' outcomes: which failure decides it."""

from __future__ import annotations

import pytest

from downloader.download import RunReport
from downloader.errors import RdsBackupError, StorageError, TransferError, VerificationError
from downloader.results import FileOutcome


def report(*errors: RdsBackupError | None) -> RunReport:
    outcomes = [
        FileOutcome(f"f{i}", None, ok=err is None, error=err) for i, err in enumerate(errors)
    ]
    return RunReport(
        backup_id="b",
        outcomes=outcomes,
        seconds=0.0,
        resolutions=0,
        refusals=0,
        retries=0,
        restarts=0,
        bytes_fetched=0,
        manifest=None,
    )


DISK = StorageError("no space left writing f", file="f")
WIRE = TransferError("giving up", file="f")
BAD = VerificationError("size mismatch", file="f")


@pytest.mark.parametrize(
    ("errors", "code"),
    [
        ((None, None), 0),
        ((None, WIRE), 1),
        ((BAD, BAD), 4),
        ((BAD, WIRE), 1),
        ((DISK, None), 6),
        # Running again cannot fetch the rest until the disk is fixed: storage decides.
        ((DISK, WIRE), 6),
        ((BAD, DISK), 6),
    ],
    ids=["ok", "transfer", "verification", "mixed", "storage", "storage+transfer", "storage+bad"],
)
def test_exit_code_of_a_run(errors: tuple[RdsBackupError | None, ...], code: int) -> None:
    assert report(*errors).exit_code == code
    assert report(*errors).to_json()["exit_code"] == code
