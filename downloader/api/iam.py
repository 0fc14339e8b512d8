"""The IAM token call: ``POST {iam}/v3/auth/tokens`` with a user's password (facts §4b).

One call, one token: :class:`IamTokenClient` sends the request and reads the answer into an
:class:`IssuedToken`; caching and refreshing it is the job of
:class:`~downloader.api.auth.IamPasswordAuth`.
"""

from __future__ import annotations

import json
import ssl as _ssl
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import yarl

from downloader.api.body import read_body
from downloader.api.parse import parse_error, parse_time
from downloader.errors import (
    ApiUnavailableError,
    MalformedJsonError,
    NetworkError,
    ResponseFormatError,
)
from downloader.text.safejson import load_json
from downloader.wire.httpdates import http_date
from downloader.wire.netmap import network_errors

MAX_IAM_BODY = 4 * 1024 * 1024  # the catalog can be big; we ask for nocatalog anyway
DEFAULT_IAM_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=15)

SslArg = _ssl.SSLContext | bool | None  # None: aiohttp's default verification


@dataclass(frozen=True, slots=True, repr=False)
class IssuedToken:
    """A token IAM issued, with its lifetime measured on IAM's clock."""

    token: str
    expires_at: datetime  # ``token.expires_at`` as the server wrote it
    lifetime: float  # seconds from issue to expiry, never negative
    project_id: str | None  # the project the token is scoped to, if the answer names it

    def __repr__(self) -> str:  # the token is a secret
        return f"<IssuedToken expires {self.expires_at.isoformat()}, project {self.project_id!r}>"


class IamTokenClient:
    """Fetches tokens for one IAM user. ``fetches`` counts the requests sent."""

    __slots__ = ("_password", "_ssl", "_timeout", "domain", "endpoint", "fetches", "user")

    def __init__(
        self,
        *,
        user: str,
        password: str,
        domain: str,
        endpoint: str,
        ssl: SslArg = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.user = user
        self._password = password
        self.domain = domain
        self.endpoint = endpoint.rstrip("/")
        self._ssl = ssl
        self._timeout = timeout or DEFAULT_IAM_TIMEOUT
        self.fetches = 0

    def __repr__(self) -> str:
        return f"<IamTokenClient user {self.user!r} in {self.domain!r} at {self.endpoint}>"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        """What this client sends that must be redacted: the password."""
        return [self._password]

    def _body(self, project_id: str | None, region: str | None) -> bytes:
        scope: dict[str, object] = (
            {"project": {"id": project_id}} if project_id else {"project": {"name": region}}
        )
        return json.dumps(
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": self.user,
                                "password": self._password,
                                "domain": {"name": self.domain},
                            }
                        },
                    },
                    "scope": scope,
                }
            }
        ).encode()

    async def fetch(
        self,
        session: aiohttp.ClientSession,
        *,
        project_id: str | None,
        region: str | None,
        secrets: list[str],
    ) -> IssuedToken:
        """A new token scoped to ``project_id`` (or, without one, to ``region``'s project).

        ``secrets`` are kept out of the text of an error answer.
        """
        url = yarl.URL(f"{self.endpoint}/v3/auth/tokens?nocatalog=true", encoded=True)
        host = url.raw_host or "IAM"
        self.fetches += 1
        try:
            with network_errors(f"IAM at {host}"):
                async with session.post(
                    url,
                    data=self._body(project_id, region),
                    headers={"Content-Type": "application/json;charset=utf8"},
                    timeout=self._timeout,
                    allow_redirects=False,
                    ssl=self._ssl if self._ssl is not None else True,
                ) as resp:
                    status = resp.status
                    headers = dict(resp.headers)
                    raw = await read_body(resp.content, MAX_IAM_BODY)
        except NetworkError as exc:
            raise ApiUnavailableError(f"cannot get an IAM token from {host}: {exc.what}") from exc
        if status >= 400:
            raise parse_error(
                status,
                raw,
                headers,
                secrets=secrets,
                context=f"IAM token request for user {self.user!r}",
            )
        token = next((v for k, v in headers.items() if k.lower() == "x-subject-token"), "").strip()
        if not token:
            raise ResponseFormatError("X-Subject-Token", "IAM answered without a token header")
        try:
            obj = load_json(raw, "IAM answer")
        except MalformedJsonError as exc:
            raise ResponseFormatError("token", f"IAM answer is not JSON: {exc.problem}") from exc
        expires_at, lifetime = token_lifetime(obj, headers.get("Date"))
        return IssuedToken(token, expires_at, lifetime, token_project_id(obj))


def token_lifetime(obj: object, date_header: str | None) -> tuple[datetime, float]:
    """(expires_at, seconds the token lives counted from when it was issued). Pure.

    Issued at ``token.issued_at``, else the answer's ``Date``, else now: both ends come from
    the server's clock whenever it says, so local clock skew does not shorten or stretch it.
    """
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


def token_project_id(obj: object) -> str | None:
    """``token.project.id`` of an IAM answer, if it has one. Pure."""
    if isinstance(obj, dict):
        token = obj.get("token")
        if isinstance(token, dict):
            project = token.get("project")
            if isinstance(project, dict) and isinstance(project.get("id"), str):
                return str(project["id"]) or None
    return None
