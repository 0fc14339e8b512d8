"""How credentials turn into request headers: the :class:`Auth` protocol and its three
producers, AK/SK signing, a ready IAM token, and an IAM token fetched with a password.

Which one a run uses is decided in :mod:`downloader.api.credentials`. Secrets never appear in
``repr``, ``str`` or exception text; :meth:`Auth.secrets` lists them so the logging layer can
redact them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import aiohttp

from downloader.api import signer
from downloader.api.iam import IamTokenClient, SslArg
from downloader.errors import CredentialsError

DEFAULT_REFRESH_MARGIN = 300.0  # seconds before expiry at which an IAM token is re-fetched
# The gateway accepts an X-Sdk-Date up to 15 minutes off its clock (facts §3): a correction
# smaller than this cannot be why it refused one.
MIN_CLOCK_CORRECTION = 300.0

Query = Sequence[tuple[str, str]]


@runtime_checkable
class Auth(Protocol):
    """Turns one API request into the headers that authenticate it."""

    source: str  # where the credentials came from, for messages ("environment", a file ...)
    project_id: str | None  # the project the credentials name, if they do

    async def headers(
        self,
        *,
        method: str,
        host: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> dict[str, str]:
        """``headers`` plus the authentication headers for this request."""
        ...

    def secrets(self) -> list[str]:
        """Every secret string this auth may send, for redaction."""
        ...

    def invalidate(self) -> bool:
        """Forget a cached token after the API refused it; True if a retry may now succeed."""
        ...

    def correct_clock(self, skew: float) -> bool:
        """From now on, sign with a clock ``skew`` seconds ahead of ours (the server's time,
        read from its ``Date`` after it refused a request as expired).

        True if that changes what is sent, so one retry may now succeed; False when the
        credentials carry no time or already use (nearly) that one.
        """
        ...


class AkSkAuth:
    """Permanent or temporary AK/SK, signed with SDK-HMAC-SHA256 on every request."""

    __slots__ = ("_ak", "_clock_offset", "_now", "_sk", "_token", "project_id", "source")

    def __init__(
        self,
        ak: str,
        sk: str,
        *,
        security_token: str | None = None,
        project_id: str | None = None,
        source: str = "arguments",
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._ak = ak
        self._sk = sk
        self._token = security_token or None
        self.project_id = project_id or None
        self.source = source
        self._now = now
        self._clock_offset = 0.0

    @property
    def temporary(self) -> bool:
        return self._token is not None

    @property
    def clock_offset(self) -> float:
        """Seconds added to our clock for ``X-Sdk-Date`` (see :meth:`correct_clock`)."""
        return self._clock_offset

    def __repr__(self) -> str:
        kind = "temporary AK/SK" if self._token else "AK/SK"
        return f"<AkSkAuth {kind} from {self.source}, project_id={self.project_id!r}>"

    __str__ = __repr__

    async def headers(
        self,
        *,
        method: str,
        host: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> dict[str, str]:
        out = dict(headers)
        # As BasicCredentials.sign_request does: both headers are added before signing, so
        # both are signed (facts §4a items 9-10).
        if self.project_id:
            out["X-Project-Id"] = self.project_id
        if self._token:
            out["X-Security-Token"] = self._token
        now = self._now() if self._now is not None else None
        if self._clock_offset:
            now = (now or datetime.now(UTC)) + timedelta(seconds=self._clock_offset)
        return signer.sign(
            method=method,
            host=host,
            path=path,
            query=query,
            headers=out,
            body=body,
            ak=self._ak,
            sk=self._sk,
            now=now,
        )

    def secrets(self) -> list[str]:
        return [s for s in (self._sk, self._ak, self._token) if s]

    def invalidate(self) -> bool:
        return False

    def correct_clock(self, skew: float) -> bool:
        if abs(skew - self._clock_offset) < MIN_CLOCK_CORRECTION:
            return False  # not a clock problem we can fix
        self._clock_offset = skew
        return True


class TokenAuth:
    """A ready IAM token (``X-Auth-Token``), e.g. from ``hcloud`` or a CI secret."""

    __slots__ = ("_token", "project_id", "source")

    def __init__(
        self, token: str, *, project_id: str | None = None, source: str = "arguments"
    ) -> None:
        self._token = token
        self.project_id = project_id or None
        self.source = source

    def __repr__(self) -> str:
        return f"<TokenAuth from {self.source}, project_id={self.project_id!r}>"

    __str__ = __repr__

    async def headers(
        self,
        *,
        method: str,
        host: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> dict[str, str]:
        out = dict(headers)
        out["X-Auth-Token"] = self._token
        return out

    def secrets(self) -> list[str]:
        return [self._token]

    def invalidate(self) -> bool:
        return False  # nothing to re-fetch: the token we were given is all we have

    def correct_clock(self, skew: float) -> bool:
        return False  # a token request carries no time of ours


class IamPasswordAuth:
    """IAM user password -> token (``POST {iam}/v3/auth/tokens``), cached until shortly
    before it expires, then fetched again (single flight: concurrent callers share one fetch).

    The token's lifetime is measured on the server's clock (``expires_at - issued_at``, or
    the ``Date`` header) and applied to our monotonic clock, so local clock skew cannot make a
    dead token look alive.
    """

    __slots__ = (
        "_clock",
        "_expires_at",
        "_fetch_lock",
        "_iam",
        "_old_tokens",
        "_refresh_at",
        "_token",
        "project_id",
        "refresh_margin",
        "region",
        "source",
    )

    def __init__(
        self,
        *,
        user: str,
        password: str,
        domain: str,
        iam_endpoint: str,
        project_id: str | None = None,
        region: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        ssl: SslArg = None,
        timeout: aiohttp.ClientTimeout | None = None,
        source: str = "arguments",
    ) -> None:
        if not project_id and not region:
            raise CredentialsError("IAM password auth needs a project id or a region to scope to")
        self._iam = IamTokenClient(
            user=user,
            password=password,
            domain=domain,
            endpoint=iam_endpoint,
            ssl=ssl,
            timeout=timeout,
        )
        self.project_id = project_id or None
        self.region = region or None
        self.refresh_margin = refresh_margin
        self._clock = clock
        self.source = source
        self._token: str | None = None
        self._old_tokens: list[str] = []
        self._refresh_at = 0.0
        self._expires_at: datetime | None = None
        self._fetch_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"<IamPasswordAuth user {self._iam.user!r} in {self._iam.domain!r} from "
            f"{self.source}, project_id={self.project_id!r}>"
        )

    __str__ = __repr__

    @property
    def iam_endpoint(self) -> str:
        return self._iam.endpoint

    @property
    def fetches(self) -> int:
        """How many token requests were sent."""
        return self._iam.fetches

    @property
    def token_expires_at(self) -> datetime | None:
        """``token.expires_at`` of the cached token, as the server wrote it."""
        return self._expires_at

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def token(self, session: aiohttp.ClientSession) -> str:
        """The cached token, fetched first if missing or about to expire."""
        if self._valid():
            assert self._token is not None
            return self._token
        async with self._fetch_lock:
            if not self._valid():  # another caller may have fetched while we waited
                await self._fetch(session)
            assert self._token is not None
            return self._token

    async def _fetch(self, session: aiohttp.ClientSession) -> None:
        started = self._clock()
        issued = await self._iam.fetch(
            session, project_id=self.project_id, region=self.region, secrets=self.secrets()
        )
        # Refresh ``refresh_margin`` early, but never later than half-way through a short-lived
        # token's life (so a 2-minute token is not re-fetched on every call).
        lead = min(self.refresh_margin, issued.lifetime / 2)
        self._refresh_at = started + issued.lifetime - lead
        if self._token:
            self._old_tokens = [*self._old_tokens[-3:], self._token]
        self._token = issued.token
        self._expires_at = issued.expires_at
        if not self.project_id:
            self.project_id = issued.project_id

    async def headers(
        self,
        *,
        method: str,
        host: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> dict[str, str]:
        out = dict(headers)
        out["X-Auth-Token"] = await self.token(session)
        return out

    def secrets(self) -> list[str]:
        return [s for s in (*self._iam.secrets(), self._token, *self._old_tokens) if s]

    def invalidate(self) -> bool:
        had = self._token is not None
        self._refresh_at = 0.0
        return had

    def correct_clock(self, skew: float) -> bool:
        return False  # the token's lifetime is already measured on IAM's clock
