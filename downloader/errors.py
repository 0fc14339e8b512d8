"""One exception tree for rds-backup.

    RdsBackupError                      exit 1 unless a subclass says otherwise
    ├── UsageError                      exit 2  bad options, bad input files, nothing selected
    │   ├── UnsafeNameError                     a file name that would escape the output folder
    │   ├── UntrustedFolderError                a link (or a stranger's folder) planted in it
    │   ├── NothingSelectedError                the backup lists no file, or none matches
    │   ├── ForeignBackupError                  the output folder holds another backup
    │   └── MalformedJsonError                  untrusted JSON that does not parse (or nests deep)
    ├── CredentialsError                exit 3  no usable credentials in env/profile
    ├── ApiError                        exit 3  the RDS/IAM API answered with an error
    │   ├── ApiAuthError                        401/403: credentials refused
    │   ├── ApiNotFoundError                    404: unknown backup, project or endpoint
    │   │   └── BackupUnavailableError          no files: an unknown, BUILDING or FAILED backup
    │   ├── ApiThrottledError                   429 / APIG.0308 after retries
    │   ├── ApiUnavailableError                 connection errors, timeouts, 5xx after retries
    │   │   └── ApiTlsError                     certificate or handshake: never retried
    │   └── ResponseFormatError                 the answer is not in the documented shape
    ├── NetworkError                    exit 1  no answer, or an answer cut short (retryable)
    │   ├── ConnectFailed                       DNS, refused, reset (also a ConnectionError)
    │   ├── NetworkTimeout                      connect or read timed out (also a TimeoutError)
    │   ├── BodyIncomplete                      the connection ended inside a body
    │   └── TlsFailed                           certificate or handshake: never retried
    ├── TransferError                   exit 1  one file could not be fetched
    │   ├── LinkRefusedError                    403 from the object store even after re-resolving
    │   ├── ObjectChangedError                  412 / ETag changed between ranges
    │   └── FileGoneError                       re-resolved list lacks the file or changed its size
    ├── VerificationError               exit 4  bytes arrived but do not verify
    │   └── ContentDamagedError                 the backup's own checksums fail, and the
    │                                           store serves the same bytes again
    ├── StorageError                    exit 6  the output folder: ENOSPC, EROFS, EACCES, EIO
    ├── ConsumerGoneError               exit 1  a stream's reader closed the pipe
    ├── ChainUnreachableError           exit 1  no chain of backups reaches a point in time
    ├── LockHeldError                   exit 5  another run holds the output folder
    │   └── DownloadRunningError                ``verify`` while a download holds it
    └── Interrupted                     exit 130 (SIGINT) / 143 (SIGTERM)

Only the CLI turns these into words and exit codes.
"""

from __future__ import annotations

from datetime import datetime


class RdsBackupError(Exception):
    """Base of every error rds-backup raises on purpose."""

    exit_code = 1


class UsageError(RdsBackupError):
    exit_code = 2


class UnsafeNameError(UsageError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"refusing file name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class UntrustedFolderError(UsageError):
    """The output folder holds something rds-backup did not create and will not follow or
    write through: a symbolic link where its state or a file's folder belongs, or a state
    folder that is not a folder of the running user. ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refusing the output folder: {path} {reason}; remove it and run again")
        self.path = path
        self.reason = reason


class NothingSelectedError(UsageError):
    pass


class ForeignBackupError(UsageError):
    """The output folder holds another backup than the one asked for (its manifest or its
    journal records name it): a folder belongs to one backup, so the files, records and
    manifest of two never mix. ``held`` is the backup id the folder holds."""

    def __init__(self, message: str, *, folder: str, held: str, wanted: str) -> None:
        super().__init__(message)
        self.folder = folder
        self.held = held
        self.wanted = wanted


class MalformedJsonError(UsageError):
    """Untrusted JSON that does not parse: ``what`` names the input, ``problem`` says why.

    Raised by :func:`downloader.text.safejson.load_json`; callers whose input is not the user's
    (an API answer, a journal record) catch it and raise or warn in their own terms.
    """

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"{what} is not valid JSON: {problem}")
        self.what = what
        self.problem = problem


class CredentialsError(RdsBackupError):
    exit_code = 3


class ApiError(RdsBackupError):
    """An error answer (or no answer) from the RDS or IAM API."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        parts = [message]
        if status is not None:
            parts.append(f"HTTP {status}")
        if error_code:
            parts.append(f"code {error_code}")
        if request_id:
            parts.append(f"request id {request_id}")
        super().__init__(parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})")
        self.status = status
        self.error_code = error_code
        self.request_id = request_id
        self.detail = message


class ApiAuthError(ApiError):
    pass


class ApiNotFoundError(ApiError):
    pass


class BackupUnavailableError(ApiNotFoundError):
    """backup-files has no files for ``backup_id``: the backup is unknown or not COMPLETED.
    ``backup_status`` is its status when its instance's list (or the error code) tells, and
    ``instead`` the newest COMPLETED backup of that instance, when there is one."""

    def __init__(
        self,
        message: str,
        *,
        backup_id: str,
        backup_status: str | None,
        instead: str | None,
        status: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, error_code=error_code, request_id=request_id)
        self.backup_id = backup_id
        self.backup_status = backup_status
        self.instead = instead


class ApiThrottledError(ApiError):
    pass


class ApiUnavailableError(ApiError):
    pass


class ApiTlsError(ApiUnavailableError):
    """A certificate or handshake failure talking to the API: retrying cannot fix it."""


class ResponseFormatError(ApiError):
    """The API answered, but not in the documented shape; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"unexpected API response: {field}: {problem}")
        self.field = field
        self.problem = problem


class NetworkError(RdsBackupError):
    """An HTTP exchange that failed below HTTP: no answer, or an answer cut short.

    Raised through :mod:`downloader.wire.netmap`, the one place where libcurl's error codes
    (object data) and aiohttp's exceptions (the API) become ours. ``what`` names the
    failure in a few words for logs and retries.
    """

    retryable = True

    def __init__(self, message: str, *, what: str = "") -> None:
        super().__init__(message)
        self.what = what or message


class ConnectFailed(NetworkError, ConnectionError):
    pass


class NetworkTimeout(NetworkError, TimeoutError):
    pass


class BodyIncomplete(NetworkError):
    pass


class TlsFailed(NetworkError):
    """A certificate or handshake failure: retrying cannot fix it."""

    retryable = False


class TransferError(RdsBackupError):
    """One file (or one range of it) could not be fetched."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        extra = []
        if status is not None:
            extra.append(f"HTTP {status}")
        if request_id:
            extra.append(f"request id {request_id}")
        text = f"{message} ({', '.join(extra)})" if extra else message
        super().__init__(text)
        self.file = file
        self.status = status
        self.request_id = request_id


class LinkRefusedError(TransferError):
    pass


class ObjectChangedError(TransferError):
    pass


class FileGoneError(TransferError):
    pass


class VerificationError(RdsBackupError):
    exit_code = 4

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class ContentDamagedError(VerificationError):
    """The backup itself is damaged: its own structure fails (a chunk's CRC-32, a gzip
    member's), and fetching those bytes again gave the same bytes, so the object store's
    copy is what is damaged, not the transfer. ``member`` and ``offset`` say where;
    ``kept_as`` is where the bytes were put apart (never under the file's own name)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        member: str | None = None,
        offset: int | None = None,
        kept_as: str | None = None,
    ) -> None:
        super().__init__(message, file=file)
        self.member = member
        self.offset = offset
        self.kept_as = kept_as


class StorageError(RdsBackupError):
    """The output folder cannot take the files: no space, read-only, not writable, an I/O
    error. Running again cannot help until that is fixed, hence a code of its own."""

    exit_code = 6

    def __init__(self, message: str, *, file: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.errno = errno


class ConsumerGoneError(RdsBackupError):
    """The process reading ``rds-backup cat``'s output closed the pipe (EPIPE)."""


class ChainUnreachableError(RdsBackupError):
    """No chain of COMPLETED backups restores ``instance_id`` to ``to_time``. ``reason``:
    ``no_full`` (no full backup ends by then; ``gap_to`` is the earliest moment that can be
    restored to, if any), ``gap`` (no incremental covers ``gap_from`` to ``gap_to``) or
    ``not_yet`` (the incrementals end at ``gap_from``). ``reachable`` is the newest moment
    that can be restored to, at or before ``to_time`` (None: none): one ``--to-time``
    accepts."""

    def __init__(
        self,
        instance_id: str,
        to_time: datetime,
        *,
        reason: str,
        gap_from: datetime | None,
        gap_to: datetime | None,
        reachable: datetime | None,
    ) -> None:
        def iso(when: datetime | None) -> str:
            return when.isoformat() if when else "?"

        head = f"cannot restore instance {instance_id} to {to_time.isoformat()}"
        newest = (
            f"the newest moment that can be reached is {iso(reachable)}"
            if reachable is not None
            else "no moment before it can be reached"
        )
        if reason == "no_full":
            why = "no COMPLETED full backup (auto or manual) ends at or before it"
            if gap_to is not None:
                why += f"; the earliest moment that can be restored is {iso(gap_to)}"
        elif reason == "gap":
            why = (
                f"no COMPLETED incremental backup covers {iso(gap_from)} to {iso(gap_to)} "
                f"(a gap); {newest}"
            )
        else:
            why = (
                f"no COMPLETED incremental backup reaches it yet (they end at {iso(gap_from)}); "
                f"{newest}"
            )
        super().__init__(f"{head}: {why}; nothing was fetched")
        self.instance_id = instance_id
        self.to_time = to_time
        self.reason = reason
        self.gap_from = gap_from
        self.gap_to = gap_to
        self.reachable = reachable


class LockHeldError(RdsBackupError):
    exit_code = 5

    def __init__(self, folder: str, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"{folder} is locked by {holder} (another rds-backup run); "
            "use --wait-lock to wait for it"
        )
        self.pid = pid


class DownloadRunningError(LockHeldError):
    """``verify`` found the folder locked by a download: its files are still being written."""

    def __init__(self, folder: str, pid: int | None) -> None:
        holder = f" (pid {pid})" if pid else ""
        RdsBackupError.__init__(
            self,
            f"a download{holder} is running in {folder}; verify the folder once it has finished",
        )
        self.pid = pid


class Interrupted(RdsBackupError):
    def __init__(self, signum: int) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; run the same command again to resume")
        self.signum = signum
        self.exit_code = 128 + signum
