"""Where credentials come from and how they turn into request headers.

Order (the official SDK's env -> profile order, facts §4c, then our two token sources):

1. ``HUAWEICLOUD_SDK_AK`` + ``HUAWEICLOUD_SDK_SK`` (+ ``HUAWEICLOUD_SDK_SECURITY_TOKEN``)
2. the profile ``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` (default ``~/.huaweicloud/credentials``),
   section ``[basic]``: ``ak``, ``sk``, ``security_token``, ``project_id``, ``iam_endpoint``
3. ``RDS_BACKUP_AUTH_TOKEN``: a ready IAM token, sent as ``X-Auth-Token``
4. ``RDS_BACKUP_IAM_USER`` + ``RDS_BACKUP_IAM_PASSWORD`` + ``RDS_BACKUP_IAM_DOMAIN``: an IAM
   token fetched with ``POST /v3/auth/tokens`` (facts §4b), cached and refreshed before expiry

Secrets never appear in ``repr``, ``str`` or exception text; :meth:`Auth.secrets` lists them
so the logging layer can redact them.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import ssl as _ssl
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

import aiohttp
import yarl

from downloader.api import signer
from downloader.api.parse import parse_error, parse_time
from downloader.api.regions import iam_endpoint as regional_iam_endpoint
from downloader.errors import ApiUnavailableError, CredentialsError, ResponseFormatError
from downloader.httpdates import http_date

ENV_AK = "HUAWEICLOUD_SDK_AK"
ENV_SK = "HUAWEICLOUD_SDK_SK"
ENV_SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a variable name
ENV_PROJECT_ID = "HUAWEICLOUD_SDK_PROJECT_ID"
ENV_CREDENTIALS_FILE = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
ENV_IAM_ENDPOINT = "HUAWEICLOUD_SDK_IAM_ENDPOINT"
ENV_AUTH_TOKEN = "RDS_BACKUP_AUTH_TOKEN"  # noqa: S105 - a variable name
ENV_IAM_USER = "RDS_BACKUP_IAM_USER"
ENV_IAM_PASSWORD = "RDS_BACKUP_IAM_PASSWORD"  # noqa: S105 - a variable name
ENV_IAM_DOMAIN = "RDS_BACKUP_IAM_DOMAIN"

DEFAULT_CREDENTIALS_FILE = Path(".huaweicloud") / "credentials"
DEFAULT_REFRESH_MARGIN = 300.0  # seconds before expiry at which an IAM token is re-fetched
MAX_IAM_BODY = 4 * 1024 * 1024  # the catalog can be big; we ask for nocatalog anyway

Query = Sequence[tuple[str, str]]
SslArg = _ssl.SSLContext | bool | None  # None: aiohttp's default verification


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


class AkSkAuth:
    """Permanent or temporary AK/SK, signed with SDK-HMAC-SHA256 on every request."""

    __slots__ = ("_ak", "_now", "_sk", "_token", "clock_offset", "project_id", "source")

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
        # Seconds to add to our clock for X-Sdk-Date: set when the gateway refuses a
        # signature as expired and its Date header shows how far off our clock is.
        self.clock_offset = 0.0

    @property
    def temporary(self) -> bool:
        return self._token is not None

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
        if self.clock_offset:
            now = (now or datetime.now(UTC)) + timedelta(seconds=self.clock_offset)
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


class IamPasswordAuth:
    """IAM user password -> token (``POST {iam}/v3/auth/tokens``), cached until shortly
    before it expires, then fetched again (single flight: concurrent callers share one fetch).

    The token's lifetime is measured on the server's clock (``expires_at - issued_at``, or
    the ``Date`` header) and applied to our monotonic clock, so local clock skew cannot make a
    dead token look alive.
    """

    __slots__ = (
        "_clock",
        "_domain",
        "_expires_at",
        "_fetch_lock",
        "_old_tokens",
        "_password",
        "_refresh_at",
        "_ssl",
        "_timeout",
        "_token",
        "_user",
        "fetches",
        "iam_endpoint",
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
        self._user = user
        self._password = password
        self._domain = domain
        self.iam_endpoint = iam_endpoint.rstrip("/")
        self.project_id = project_id or None
        self.region = region or None
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._ssl = ssl
        self._timeout = timeout or aiohttp.ClientTimeout(total=60, connect=15)
        self.source = source
        self._token: str | None = None
        self._old_tokens: list[str] = []
        self._refresh_at = 0.0
        self._expires_at: datetime | None = None
        self._fetch_lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return (
            f"<IamPasswordAuth user {self._user!r} in {self._domain!r} from {self.source}, "
            f"project_id={self.project_id!r}>"
        )

    __str__ = __repr__

    @property
    def token_expires_at(self) -> datetime | None:
        """``token.expires_at`` of the cached token, as the server wrote it."""
        return self._expires_at

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    def _body(self) -> bytes:
        scope: dict[str, object] = (
            {"project": {"id": self.project_id}}
            if self.project_id
            else {"project": {"name": self.region}}
        )
        return json.dumps(
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": self._user,
                                "password": self._password,
                                "domain": {"name": self._domain},
                            }
                        },
                    },
                    "scope": scope,
                }
            }
        ).encode()

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
        url = yarl.URL(f"{self.iam_endpoint}/v3/auth/tokens?nocatalog=true", encoded=True)
        host = url.raw_host or "IAM"
        started = self._clock()
        self.fetches += 1
        try:
            async with session.post(
                url,
                data=self._body(),
                headers={"Content-Type": "application/json;charset=utf8"},
                timeout=self._timeout,
                allow_redirects=False,
                ssl=self._ssl if self._ssl is not None else True,
            ) as resp:
                status = resp.status
                resp_headers = dict(resp.headers)
                raw = await resp.content.read(MAX_IAM_BODY)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiUnavailableError(
                f"cannot get an IAM token from {host}: {type(exc).__name__}"
            ) from exc
        if status >= 400:
            raise parse_error(
                status,
                raw,
                resp_headers,
                secrets=self.secrets(),
                context=f"IAM token request for user {self._user!r}",
            )
        token = next(
            (v for k, v in resp_headers.items() if k.lower() == "x-subject-token"), ""
        ).strip()
        if not token:
            raise ResponseFormatError("X-Subject-Token", "IAM answered without a token header")
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ResponseFormatError("token", "IAM answer is not JSON") from exc
        expires_at, lifetime = _token_lifetime(obj, resp_headers.get("Date"))
        # Refresh ``refresh_margin`` early, but never later than half-way through a short-lived
        # token's life (so a 2-minute token is not re-fetched on every call).
        lead = min(self.refresh_margin, lifetime / 2)
        self._refresh_at = started + lifetime - lead
        if self._token:
            self._old_tokens = [*self._old_tokens[-3:], self._token]
        self._token = token
        self._expires_at = expires_at
        if not self.project_id:
            self.project_id = _token_project_id(obj)

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
        return [s for s in (self._password, self._token, *self._old_tokens) if s]

    def invalidate(self) -> bool:
        had = self._token is not None
        self._refresh_at = 0.0
        return had


def _token_lifetime(obj: object, date_header: str | None) -> tuple[datetime, float]:
    """(expires_at, seconds the token lives counted from when it was issued)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("token"), dict):
        raise ResponseFormatError("token", "missing")
    token = obj["token"]
    raw_exp = token.get("expires_at")
    if not isinstance(raw_exp, str):
        raise ResponseFormatError("token.expires_at", "missing")
    expires_at = parse_time(raw_exp)
    if expires_at is None:
        raise ResponseFormatError("token.expires_at", "not a timestamp")
    issued: datetime | None = None
    raw_issued = token.get("issued_at")
    if isinstance(raw_issued, str):
        issued = parse_time(raw_issued)
    if issued is None and date_header:
        issued = http_date(date_header)
    if issued is None:
        issued = datetime.now(UTC)
    try:
        lifetime = (expires_at - issued).total_seconds()
    except OverflowError:
        lifetime = 0.0
    return expires_at, max(0.0, lifetime)


def _token_project_id(obj: object) -> str | None:
    if isinstance(obj, dict):
        token = obj.get("token")
        if isinstance(token, dict):
            project = token.get("project")
            if isinstance(project, dict) and isinstance(project.get("id"), str):
                return str(project["id"]) or None
    return None


# --------------------------------------------------------------------------- loading


class _Profile:
    __slots__ = ("ak", "iam_endpoint", "path", "project_id", "security_token", "sk")

    def __init__(self, path: Path, section: Mapping[str, str]) -> None:
        self.path = path
        self.ak = section.get("ak", "").strip()
        self.sk = section.get("sk", "").strip()
        self.security_token = section.get("security_token", "").strip() or None
        self.project_id = section.get("project_id", "").strip() or None
        self.iam_endpoint = section.get("iam_endpoint", "").strip() or None


def _credentials_path(env: Mapping[str, str], home: Path | None) -> tuple[Path, bool]:
    explicit = env.get(ENV_CREDENTIALS_FILE, "").strip()
    if explicit:
        return Path(explicit).expanduser(), True
    base = home if home is not None else Path.home()
    return base / DEFAULT_CREDENTIALS_FILE, False


def _read_profile(path: Path, explicit: bool) -> _Profile | None:
    """The ``[basic]`` section of the SDK profile file, or None when there is none.

    Error messages name the file, never its contents (a parse error would quote a line).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        if explicit:
            raise CredentialsError(
                f"credentials file {path} (from {ENV_CREDENTIALS_FILE}) does not exist"
            ) from None
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"credentials file {path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise CredentialsError(
            f"credentials file {path} is readable by other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, UnicodeDecodeError, configparser.Error):
        raise CredentialsError(
            f"cannot parse credentials file {path} (expected INI with a [basic] section)"
        ) from None
    if not parser.has_section("basic"):
        if explicit:
            raise CredentialsError(f"credentials file {path} has no [basic] section")
        return None
    profile = _Profile(path, parser["basic"])
    missing = [k for k in ("ak", "sk") if not getattr(profile, k)]
    if missing:
        raise CredentialsError(f"credentials file {path}: [basic] lacks {' and '.join(missing)}")
    return profile


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def load_auth(
    env: Mapping[str, str],
    *,
    home: Path | None = None,
    iam_endpoint: str | None = None,
    project_id: str | None = None,
    region: str | None = None,
    refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    clock: Callable[[], float] = time.monotonic,
    ssl: SslArg = None,
) -> Auth:
    """Pick the first credential source that is configured (see the module docstring).

    ``project_id`` (e.g. from ``--project-id``) wins over ``HUAWEICLOUD_SDK_PROJECT_ID``, which
    wins over the profile's ``project_id``. For IAM password login, ``iam_endpoint`` wins over
    ``HUAWEICLOUD_SDK_IAM_ENDPOINT``, which wins over the regional IAM host of ``region``.
    """
    explicit_project = (project_id or "").strip() or _env(env, ENV_PROJECT_ID) or None

    ak, sk = _env(env, ENV_AK), _env(env, ENV_SK)
    if ak or sk:
        if not (ak and sk):
            have, lack = (ENV_AK, ENV_SK) if ak else (ENV_SK, ENV_AK)
            raise CredentialsError(f"{have} is set but {lack} is not; set both")
        return AkSkAuth(
            ak,
            sk,
            security_token=_env(env, ENV_SECURITY_TOKEN) or None,
            project_id=explicit_project,
            source="environment",
        )

    path, explicit_path = _credentials_path(env, home)
    profile = _read_profile(path, explicit_path)
    if profile is not None:
        return AkSkAuth(
            profile.ak,
            profile.sk,
            security_token=profile.security_token,
            project_id=explicit_project or profile.project_id,
            source=f"credentials file {path}",
        )

    token = _env(env, ENV_AUTH_TOKEN)
    if token:
        return TokenAuth(token, project_id=explicit_project, source=ENV_AUTH_TOKEN)

    user, password, domain = (
        _env(env, ENV_IAM_USER),
        env.get(ENV_IAM_PASSWORD, ""),  # a password may legitimately have edge spaces
        _env(env, ENV_IAM_DOMAIN),
    )
    if user or password or domain:
        missing = [
            name
            for name, value in (
                (ENV_IAM_USER, user),
                (ENV_IAM_PASSWORD, password),
                (ENV_IAM_DOMAIN, domain),
            )
            if not value
        ]
        if missing:
            raise CredentialsError(f"IAM password login needs {', '.join(missing)} as well")
        endpoint = (
            (iam_endpoint or "").strip()
            or _env(env, ENV_IAM_ENDPOINT)
            or (regional_iam_endpoint(region, env) if region else "")
        )
        if not endpoint:
            raise CredentialsError(
                f"IAM password login needs a region or {ENV_IAM_ENDPOINT} to find IAM"
            )
        if not explicit_project and not region:
            raise CredentialsError("IAM password login needs a project id or a region")
        return IamPasswordAuth(
            user=user,
            password=password,
            domain=domain,
            iam_endpoint=endpoint,
            project_id=explicit_project,
            region=region,
            refresh_margin=refresh_margin,
            clock=clock,
            ssl=ssl,
            source="environment",
        )

    raise CredentialsError(
        "no credentials found; set one of: "
        f"{ENV_AK} + {ENV_SK} (optionally {ENV_SECURITY_TOKEN}); "
        f"a credentials file {path} ([basic] ak, sk; mode 0600; or {ENV_CREDENTIALS_FILE}); "
        f"{ENV_AUTH_TOKEN}; "
        f"or {ENV_IAM_USER} + {ENV_IAM_PASSWORD} + {ENV_IAM_DOMAIN}"
    )
