"""One signed exchange with the RDS API: sign for the endpoint in use, send, read a bounded
answer, with aiohttp's errors translated (:mod:`downloader.wire.netmap`) into the API's.

Several endpoints (``HUAWEICLOUD_SDK_REGION_RDS_<REGION>=https://a,https://b``): a request
that cannot connect (DNS, refused, TLS handshake, connect timeout) goes on to the next one
within the same attempt, as the SDK's client does; an HTTP error answer never moves on.
Retries across attempts are the client's (:class:`~downloader.api.client.RdsClient`).
"""

from __future__ import annotations

import logging
import ssl as _ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import yarl

from downloader.api import signer
from downloader.api.auth import Auth
from downloader.api.body import read_body
from downloader.errors import (
    ApiTlsError,
    ApiUnavailableError,
    NetworkError,
    NetworkTimeout,
    ResponseFormatError,
    TlsFailed,
    UsageError,
)
from downloader.wire.netmap import network_errors, never_connected

log = logging.getLogger("rds_backup.api.client")

MAX_BODY = 16 * 1024 * 1024
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=15)
USER_AGENT = "rds-backup/0.1"

SslArg = _ssl.SSLContext | bool | None


def _host_port(url: yarl.URL) -> str:
    """The URL netloc as signed and sent in ``Host``: host plus any non-default port."""
    return url.host_port_subcomponent or ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One RDS API base URL, in the three forms a request needs."""

    base: str  # scheme://host[:port][/path], no trailing slash
    path: str  # its path, to which the signed resource path is appended
    host: str  # host[:port], as signed and sent in Host

    @classmethod
    def parse(cls, endpoint: str) -> Endpoint:
        base = yarl.URL(endpoint.strip().rstrip("/"))
        if base.scheme not in ("http", "https") or not base.raw_host:
            raise UsageError(f"RDS endpoint must be an http(s) URL, got {endpoint!r}")
        return cls(str(base).rstrip("/"), base.raw_path.rstrip("/"), _host_port(base))


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class ApiTransport:
    """Signed requests to the RDS API endpoints, the one in use first. ``calls`` counts the
    HTTP requests sent; ``answered`` says whether any endpoint ever answered."""

    def __init__(
        self,
        endpoint: str | Sequence[str],
        auth: Auth,
        session: aiohttp.ClientSession,
        *,
        ssl: SslArg = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> None:
        listed = [endpoint] if isinstance(endpoint, str) else list(endpoint)
        if not listed:
            raise UsageError("no RDS endpoint given")
        self._endpoints = tuple(Endpoint.parse(e) for e in listed)
        self._current = 0  # the endpoint in use; moves on a connection failure
        self.answered = False  # after an answer, no connection is a passing fault
        self._auth = auth
        self._session = session
        self._ssl: _ssl.SSLContext | bool = ssl if ssl is not None else True
        self._timeout = timeout
        self.calls = 0

    @property
    def base(self) -> str:
        return self._endpoints[self._current].base

    async def exchange(self, method: str, path: str, query: list[tuple[str, str]]) -> Answer:
        """One attempt: sign for the endpoint in use and send. When no connection could be
        made to it, the next listed endpoint (each once per attempt; logged), as the SDK
        does; an error answer is an answer and never moves on."""
        qs = signer.canonical_query(query)
        tried = 0
        while True:
            index = self._current
            ep = self._endpoints[index]
            headers = await self._auth.headers(
                method=method,
                host=ep.host,
                path=ep.path + path,
                query=query,
                headers={"Content-Type": "application/json", "Host": ep.host},
                body=b"",
                session=self._session,
            )
            headers["User-Agent"] = USER_AGENT  # unsigned (the SDK signs it; optional, §4a)
            url = yarl.URL(ep.base + path + (f"?{qs}" if qs else ""), encoded=True)
            try:
                answer = await self._send(method, url, headers, ep.host)
                self.answered = True
                return answer
            except ApiUnavailableError as exc:
                tried += 1
                if len(self._endpoints) == 1 or not never_connected(exc.__cause__):
                    raise
                # From the index this call used: concurrent calls failing alike agree.
                self._current = (index + 1) % len(self._endpoints)
                if tried >= len(self._endpoints):
                    raise
                log.warning(
                    "%s; trying the next endpoint, %s", exc, self._endpoints[self._current].host
                )

    async def _send(self, method: str, url: yarl.URL, headers: dict[str, str], host: str) -> Answer:
        self.calls += 1
        try:
            with network_errors(f"RDS API at {host}"):
                async with self._session.request(
                    method,
                    url,
                    headers=headers,
                    ssl=self._ssl,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as resp:
                    length = resp.content_length
                    if length is not None and length > MAX_BODY:
                        raise ResponseFormatError("response", f"body of {length} bytes is too big")
                    body = await read_body(resp.content, MAX_BODY)
                    return Answer(resp.status, dict(resp.headers), body)
        except TlsFailed as exc:
            raise ApiTlsError(
                f"TLS failure talking to the RDS API at {host}: {exc.what} "
                "(a private CA? use --ca-bundle)"
            ) from exc
        except NetworkError as exc:
            what = exc.what
            if isinstance(exc, NetworkTimeout):
                what = (
                    "connect timed out"
                    if never_connected(exc)
                    else "timed out waiting for an answer"
                )
            raise ApiUnavailableError(f"cannot reach the RDS API at {host}: {what}") from exc
