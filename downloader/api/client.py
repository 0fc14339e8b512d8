"""The RDS API over a caller-provided ``aiohttp.ClientSession``: backup-files, backups and
instances.

Every request: ``Content-Type: application/json`` (mandatory per the API docs), auth headers
from an :class:`~downloader.api.auth.Auth`, a URL whose query is exactly the signed canonical
query (``yarl.URL(..., encoded=True)`` so aiohttp does not re-encode it), one API budget
token, a connect + total timeout.

Retries (decided by :class:`RetryPolicy`, a pure object): connection errors, timeouts, 429 /
APIG.0308 and 5xx, with the shared :class:`~downloader.retry.Backoff` (full jitter, at least
``Retry-After``). A TLS failure is final, and so is any other 4xx at once: a wrong SK costs
exactly one request, and more than five signature failures in a row lock the AK for five
minutes (facts §3). A 401 for an expired signature, when the server's ``Date`` shows our clock
is off, is signed again once with the server's time (:meth:`Auth.correct_clock`).

Several endpoints (``HUAWEICLOUD_SDK_REGION_RDS_<REGION>=https://a,https://b``): a request
that cannot connect (DNS, refused, TLS handshake, connect timeout) goes on to the next one
within the same attempt, as the SDK's client does; an HTTP error answer never moves on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import aiohttp

from downloader.api.auth import Auth
from downloader.api.budget import ApiBudget
from downloader.api.paging import all_pages
from downloader.api.parse import parse_backup_files, parse_backups, parse_error, parse_instances
from downloader.api.transport import DEFAULT_TIMEOUT, Answer, ApiTransport, SslArg
from downloader.api.unavailable import NO_FILES_CODES, backup_unavailable
from downloader.errors import (
    ApiError,
    ApiNotFoundError,
    ApiThrottledError,
    ApiTlsError,
    ApiUnavailableError,
    MalformedJsonError,
    ResponseFormatError,
    UsageError,
)
from downloader.models import Backup, FileListing, Instance
from downloader.text.safejson import load_json
from downloader.wire.httpdates import http_date, retry_after_seconds
from downloader.wire.netmap import nobody_there
from downloader.wire.retry import Backoff

log = logging.getLogger("rds_backup.api.client")

_Listed = TypeVar("_Listed", Backup, Instance)  # what a paged listing holds

PAGE_LIMIT = 100  # the API's maximum page size (facts §2)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a retryable API failure; ``backoff`` says how long to
    wait between attempts (built from ``base_delay`` and ``max_delay``)."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    total_timeout: float = 180.0  # the whole call, all attempts and waits included
    backoff: Backoff = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Retry-After is honoured in full: ``total_timeout`` is what bounds a long one.
        backoff = Backoff(base=self.base_delay, max_delay=self.max_delay)
        object.__setattr__(self, "backoff", backoff)  # frozen: set once, here


def _format_time(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise UsageError("begin/end times need a time zone")
    return value.strftime("%Y-%m-%dT%H:%M:%S%z")  # +0800, as documented (facts §2)


class RdsClient:
    """RDS v3 API calls used by rds-backup. ``calls`` counts HTTP requests sent.

    ``endpoint`` may be a list (``HUAWEICLOUD_SDK_REGION_RDS_<REGION>`` may name several, as
    the SDK reads it): when one cannot be connected to, the next is tried, and kept.
    """

    def __init__(
        self,
        *,
        endpoint: str | Sequence[str],
        project_id: str,
        auth: Auth,
        session: aiohttp.ClientSession,
        budget: ApiBudget | None = None,
        retry: RetryPolicy = RetryPolicy(),
        ssl: SslArg = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not project_id or "/" in project_id:
            raise UsageError(
                "a project id is required (--project-id or HUAWEICLOUD_SDK_PROJECT_ID)"
            )
        self.project_id = project_id
        self.auth = auth
        self._wire = ApiTransport(endpoint, auth, session, ssl=ssl, timeout=timeout)
        self.budget = budget
        self.retry = retry
        self._clock = clock
        self._sleep = sleep
        self._rng = rng

    @property
    def calls(self) -> int:
        """HTTP requests sent so far."""
        return self._wire.calls

    def __repr__(self) -> str:
        return f"<RdsClient {self._wire.base} project {self.project_id}>"

    # ------------------------------------------------------------------ the API calls

    async def show_backup_files(
        self, backup_id: str, *, instance_id: str | None = None
    ) -> FileListing:
        """``GET /v3/{project_id}/backup-files?backup_id=...``: the files and their links.

        When it has none for the backup (unknown, BUILDING, FAILED), the backups list of
        ``instance_id`` says why and which backup to take instead
        (:class:`~downloader.errors.BackupUnavailableError`).
        """
        try:
            answer = await self._call("GET", "backup-files", [("backup_id", backup_id)])
        except ApiError as exc:
            if exc.error_code not in NO_FILES_CODES:
                raise
            raise await self._why_no_files(exc, backup_id, instance_id) from exc
        obj = self._json(answer)
        return parse_backup_files(obj, server_date=http_date(answer.headers.get("Date")))

    async def list_backups(
        self,
        instance_id: str,
        *,
        backup_type: str | None = None,
        status: str | None = None,
        begin_time: datetime | str | None = None,
        end_time: datetime | str | None = None,
        backup_id: str | None = None,
    ) -> list[Backup]:
        """All pages of ``GET /v3/{project_id}/backups`` (offset/limit until total_count)."""
        if (begin_time is None) != (end_time is None):
            raise UsageError("begin and end time must be given together")
        base: list[tuple[str, str]] = [("instance_id", instance_id)]
        if backup_id:
            base.append(("backup_id", backup_id))
        if backup_type:
            base.append(("backup_type", backup_type))
        if status:
            base.append(("status", status))
        if begin_time is not None and end_time is not None:
            base += [("begin_time", _format_time(begin_time)), ("end_time", _format_time(end_time))]
        return await self._all_pages("backups", base, parse_backups, PAGE_LIMIT)

    async def list_instances(self, *, page_size: int = PAGE_LIMIT) -> list[Instance]:
        """All pages of ``GET /v3/{project_id}/instances`` (offset/limit until total_count;
        ``page_size`` at most 100, the API's maximum)."""
        if not 1 <= page_size <= PAGE_LIMIT:
            raise UsageError(f"page size {page_size} is not within 1..{PAGE_LIMIT}")
        return await self._all_pages("instances", [], parse_instances, page_size)

    async def _all_pages(
        self,
        resource: str,
        base: list[tuple[str, str]],
        parse: Callable[[object], tuple[list[_Listed], int]],
        page_size: int,
    ) -> list[_Listed]:
        async def page(query: list[tuple[str, str]]) -> object:
            return self._json(await self._call("GET", resource, query))

        return await all_pages(page, resource, base, parse, page_size)

    async def latest_backup(
        self, instance_id: str, backup_types: Sequence[str] = ("auto",)
    ) -> Backup:
        """The COMPLETED backup of one of ``backup_types`` with the newest end time.

        The list's sort order is undocumented and its status filter only works for SQL Server
        (facts §2), so both are done here.
        """
        candidates: list[Backup] = []
        for backup_type in dict.fromkeys(backup_types):
            for backup in await self.list_backups(instance_id, backup_type=backup_type):
                if backup.status.upper() == "COMPLETED" and backup.type == backup_type:
                    candidates.append(backup)
        best = pick_latest(candidates)
        if best is None:
            kinds = "/".join(backup_types) or "any"
            raise ApiNotFoundError(
                f"instance {instance_id} has no COMPLETED {kinds} backup with an end time"
            )
        return best

    async def _why_no_files(
        self, error: ApiError, backup_id: str, instance_id: str | None
    ) -> ApiError:
        listed: list[Backup] | None = None
        if instance_id:
            try:
                listed = await self.list_backups(instance_id)
            except ApiError as exc:  # a courtesy: the first error is the one that counts
                log.debug("cannot list the backups of %s: %s", instance_id, exc)
        mine = next((b for b in listed or () if b.id == backup_id), None)
        done = [b for b in listed or () if b.status.upper() == "COMPLETED"]
        # Of the same kind as the one asked for (a binlog for a binlog, a full backup for
        # a full or an unknown one), else of any kind.
        incremental = mine is not None and mine.type == "incremental"
        kind = [b for b in done if (b.type == "incremental") == incremental]
        instead = pick_latest(kind) or pick_latest(done)
        return backup_unavailable(
            error, backup_id, instance_id=instance_id, listed=listed, instead=instead
        )

    # ------------------------------------------------------------------ plumbing

    def _json(self, answer: Answer) -> object:
        try:
            return load_json(answer.body, "API answer")
        except MalformedJsonError as exc:
            raise ResponseFormatError("response", f"not JSON: {exc.problem}") from exc

    async def _call(self, method: str, resource: str, query: list[tuple[str, str]]) -> Answer:
        """One API call, retried as the policy says; an answer of "not found" names the ids
        the call was about (``backup a82f...br01``), since the API's words do not."""
        try:
            return await self._call_once(method, resource, query)
        except ApiNotFoundError as exc:
            if type(exc) is not ApiNotFoundError:
                raise
            about = ", ".join(
                f"{name.removesuffix('_id')} {value}"
                for name, value in query
                if name in ("backup_id", "instance_id")
            )
            if not about:
                raise
            raise ApiNotFoundError(
                f"{about} (project {self.project_id}): {exc.detail}",
                status=exc.status,
                error_code=exc.error_code,
                request_id=exc.request_id,
            ) from exc

    async def _call_once(self, method: str, resource: str, query: list[tuple[str, str]]) -> Answer:
        deadline = self._clock() + self.retry.total_timeout
        refreshed_auth = False
        corrected_clock = False
        attempt = 0
        while True:
            attempt += 1
            if self.budget is not None:
                await self.budget.acquire()
            try:
                # Inside the try: an IAM token fetch can fail transiently, like the call itself.
                answer = await self._wire.exchange(
                    method, f"/v3/{self.project_id}/{resource}", query
                )
            except ApiError as exc:
                error: ApiError = exc
                retry_after: float | None = None
                answer_headers: Mapping[str, str] = {}
            else:
                answer_headers = answer.headers
                if answer.status < 400:
                    return answer
                error = parse_error(
                    answer.status, answer.body, answer.headers, secrets=self.auth.secrets()
                )
                now = http_date(answer.headers.get("Date")) or datetime.now(UTC)
                retry_after = retry_after_seconds(answer.headers.get("Retry-After"), now=now)
            if not isinstance(error, ApiThrottledError | ApiUnavailableError):
                if not corrected_clock and self._correct_clock(error, answer_headers):
                    corrected_clock = True  # our clock was off: sign once more, corrected
                    continue
                if error.status in (401, 403) and not refreshed_auth and self.auth.invalidate():
                    refreshed_auth = True  # a cached IAM token may have been revoked: once
                    continue
                raise error
            if isinstance(error, ApiTlsError) or attempt >= self.retry.max_attempts:
                raise error
            if not self._wire.answered and nobody_there(error.__cause__):
                # A refused connection or a name DNS does not know, before any answer: a
                # wrong --endpoint or --region, which retrying for seconds cannot fix. Later
                # (the API restarting mid-run) it is retried; a timeout always is.
                raise error
            wait = self.retry.backoff.delay(attempt, retry_after, self._rng)
            if self._clock() + wait > deadline:
                raise error
            if isinstance(error, ApiThrottledError) and self.budget is not None:
                self.budget.pause(wait)
            log.debug(
                "RDS API %s %s: %s; retrying in %.2f s (attempt %d of %d)",
                method,
                resource,
                error,
                wait,
                attempt + 1,
                self.retry.max_attempts,
            )
            await self._sleep(wait)

    def _correct_clock(self, error: ApiError, headers: Mapping[str, str]) -> bool:
        """The gateway refuses an X-Sdk-Date more than 15 minutes off its clock ("signature
        expired", facts §3). When its Date header shows ours is that far off, sign with the
        server's time from now on (if the auth signs with a clock at all). True means retry
        once."""
        if error.status != 401 or "expired" not in (error.detail or "").lower():
            return False
        server = http_date(headers.get("Date"))
        if server is None:
            return False
        skew = server.timestamp() - datetime.now(UTC).timestamp()
        if not self.auth.correct_clock(skew):
            return False  # the credentials carry no time, or already use the server's
        log.warning("this machine's clock is %.0f s off the API's; signing with its time", -skew)
        return True


def pick_latest(backups: Sequence[Backup]) -> Backup | None:
    """The backup with the newest end time (ties: newest begin time, then id). Pure."""
    dated = [b for b in backups if b.end_time is not None]
    if not dated:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)

    def key(b: Backup) -> tuple[datetime, datetime, str]:
        assert b.end_time is not None
        return (b.end_time, b.begin_time or epoch, b.id)

    return max(dated, key=key)
