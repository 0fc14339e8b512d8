"""Why backup-files has no files for a backup, in the user's terms. Pure.

backup-files answers a backup that is not COMPLETED with an error that reads like an unknown
one: ``DBS.201205`` (409, "backup in progress") for a BUILDING backup, ``DBS.201203`` (400,
"backup file does not exist") for a FAILED one, ``DBS.201010`` / ``DBS.280214`` for an
unknown id (facts §3). The backups list of the instance, when it is known, tells the status
and which backup to take instead; :meth:`RdsClient.show_backup_files` fetches it and this
module turns the lot into one error.
"""

from __future__ import annotations

from datetime import UTC

from downloader.errors import ApiError, BackupUnavailableError
from downloader.models import Backup

__all__ = ["IN_PROGRESS", "NO_FILES_CODES", "backup_unavailable"]

IN_PROGRESS = "DBS.201205"
# The codes that say "no files for this backup id" (not "no such instance or project").
NO_FILES_CODES = frozenset({"DBS.201010", "DBS.201203", "DBS.280214", IN_PROGRESS})


def _when(backup: Backup) -> str:
    if backup.end_time is None:
        return backup.type
    return f"{backup.type}, ended {backup.end_time.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def backup_unavailable(
    error: ApiError,
    backup_id: str,
    *,
    instance_id: str | None,
    listed: list[Backup] | None,
    instead: Backup | None,
) -> ApiError:
    """The error to raise for ``error`` from backup-files (one of :data:`NO_FILES_CODES`).

    ``listed`` is the instance's backups list (None: no instance known, or the list could not
    be had), ``instead`` the newest COMPLETED backup in it to suggest. An unknown backup with
    nothing more to say is ``error`` itself.
    """
    mine = next((b for b in listed or () if b.id == backup_id), None)
    status = mine.status.upper() if mine else None
    if status is None and error.error_code == IN_PROGRESS:
        status = "BUILDING"
    if status == "BUILDING":
        why = f"backup {backup_id} is BUILDING: its files exist once it is COMPLETED"
    elif status == "COMPLETED":
        why = f"backup {backup_id} is COMPLETED but the API lists no files for it"
    elif status:
        why = f"backup {backup_id} is {status}: it has no files to download"
    elif listed is not None:
        why = f"backup {backup_id} is not among the backups of instance {instance_id}"
    elif error.error_code == "DBS.201203":
        why = (
            f"backup {backup_id} has no files: a FAILED or unfinished backup? "
            "(--instance-id shows its status and the newest COMPLETED one)"
        )
    else:
        return error
    if instead is not None:
        why += (
            f"; the newest COMPLETED backup of instance {instance_id} is {instead.id} "
            f"({_when(instead)})"
        )
    elif listed is not None:
        why += f"; instance {instance_id} has no COMPLETED backup"
    return BackupUnavailableError(
        why,
        backup_id=backup_id,
        backup_status=status,
        instead=instead.id if instead else None,
        status=error.status,
        error_code=error.error_code,
        request_id=error.request_id,
    )
