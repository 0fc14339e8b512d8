"""The one place where a transport's errors become rds-backup's (as httpx's
``map_httpcore_exceptions`` does): libcurl's error codes on the object store's data path
(:func:`curl_error`), aiohttp's exceptions on the RDS API's and IAM's (every exchange runs
inside :func:`network_errors`). Callers above either catch only
:class:`~downloader.errors.NetworkError` and its leaves.

Most specific first: aiohttp's TLS errors are also connection errors, and its
``ServerTimeoutError`` is both a timeout and a disconnection. aiohttp is imported by the
API's modules, not by this one's data path: a download from saved links never loads it.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from downloader.errors import (
    BodyIncomplete,
    ConnectFailed,
    NetworkError,
    NetworkTimeout,
    TlsFailed,
)


class CurlFailure(Exception):
    """What libcurl said about a transfer that failed: the cause chained to ours."""

    def __init__(self, code: int, message: str, os_errno: int = 0) -> None:
        super().__init__(f"libcurl error {code}: {message}")
        self.code = code
        self.message = message
        self.os_errno = os_errno


# libcurl's codes (curl/curl.h, stable numbers) -> ours. Not listed: a NetworkError.
_CURL_TLS = {35, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98}
_CURL_MAP: dict[int, tuple[type[NetworkError], str, str]] = {
    5: (ConnectFailed, "cannot connect", "proxy name not found"),
    6: (ConnectFailed, "cannot connect", "DNS name not found"),
    7: (ConnectFailed, "cannot connect", "could not connect"),
    28: (NetworkTimeout, "timed out", "timed out"),
    18: (BodyIncomplete, "body cut short", "body cut short"),
    52: (BodyIncomplete, "server disconnected", "empty reply"),
    55: (BodyIncomplete, "server disconnected", "send failed"),
    56: (BodyIncomplete, "server disconnected", "receive failed"),
    92: (BodyIncomplete, "server disconnected", "HTTP/2 stream error"),
}


def curl_error(failure: CurlFailure, where: str) -> NetworkError:
    """Ours for a libcurl failure (``raise curl_error(f, where) from f``).

    A TLS failure on the handshake is a :class:`~downloader.errors.TlsFailed` only when it
    is about certificates (a reset during the handshake is the network's, and retried);
    ``what`` is a few words, as a retry line shows them.
    """
    code = failure.code
    if code in _CURL_TLS and (code != 35 or _about_certificates(failure.message)):
        what = _short(failure.message) or f"libcurl error {code}"
        return TlsFailed(f"{where}: TLS failure ({what})", what=what)
    ours, words, what = _CURL_MAP.get(code, (NetworkError, "HTTP client error", ""))
    if ours is ConnectFailed and failure.os_errno in _CONNECT_WORDS:
        what = _CONNECT_WORDS[failure.os_errno]
    what = what or _short(failure.message) or f"libcurl error {code}"
    return ours(f"{where}: {words} ({what})", what=what)


def _about_certificates(message: str) -> bool:
    return any(w in message.lower() for w in ("certificate", "verify", "alert", "issuer"))


def _short(message: str) -> str:
    """libcurl's message, printable ASCII and short (it may quote the server)."""
    return re.sub(r"[^ -~]", "?", message.strip())[:120]


@cache
def _aiohttp() -> Any:
    """aiohttp, loaded by the first API exchange's error (its callers have loaded it)."""
    import aiohttp

    return aiohttp


@cache
def _aiohttp_map() -> tuple[tuple[type[BaseException], type[NetworkError], str], ...]:
    aiohttp = _aiohttp()
    return (
        (aiohttp.ClientSSLError, TlsFailed, "TLS failure"),
        (aiohttp.ServerTimeoutError, NetworkTimeout, "timed out"),
        (TimeoutError, NetworkTimeout, "timed out"),
        (aiohttp.ClientConnectorError, ConnectFailed, "cannot connect"),
        (aiohttp.ClientPayloadError, BodyIncomplete, "body cut short"),
        (aiohttp.ServerDisconnectedError, BodyIncomplete, "server disconnected"),
        (aiohttp.ClientError, NetworkError, "HTTP client error"),
        (ConnectionError, ConnectFailed, "connection lost"),
    )


@cache
def _not_connected() -> tuple[type[BaseException], ...]:
    """Failures before any request left this machine: DNS, a refused connection, the TLS
    handshake, a connect timeout (aiohttp >= 3.10 tells that one from a read timeout)."""
    aiohttp = _aiohttp()
    return (
        aiohttp.ClientConnectorError,
        *((aiohttp.ConnectionTimeoutError,) if hasattr(aiohttp, "ConnectionTimeoutError") else ()),
    )


def never_connected(error: BaseException | None) -> bool:
    """Whether ``error`` (raised by :func:`network_errors`) failed before a connection was
    made: then another address of the same service may answer, and nothing was sent."""
    return isinstance(error, NetworkError) and isinstance(error.__cause__, _not_connected())


# errno -> why no connection was made, in the words a user acts on.
_CONNECT_WORDS = {
    errno.ECONNREFUSED: "connection refused (nothing listens there)",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "no route to host",
    errno.ETIMEDOUT: "connect timed out",
}
_ERRNOS = re.compile(r"\[Errno (\d+)\]")


def _connect_words(exc: BaseException) -> tuple[str, bool]:
    """Why ``exc`` (an aiohttp connect error) made no connection, and whether nobody can be
    there to answer (a name that does not exist, a refused connection), as opposed to a
    failure that waiting may cure (a timeout, a DNS server that did not answer)."""
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(cause, socket.gaierror):
        if cause.errno == socket.EAI_AGAIN:
            return "DNS lookup failed (temporary failure in name resolution)", False
        return "DNS name not found", cause.errno == socket.EAI_NONAME
    code = getattr(cause, "errno", None)
    if code is None:
        # asyncio's "Multiple exceptions: [Errno 111] ..., [Errno 111] ..." (one per address).
        found = {int(n) for n in _ERRNOS.findall(str(cause))}
        code = found.pop() if len(found) == 1 else None
    if code in _CONNECT_WORDS:
        return _CONNECT_WORDS[code], code == errno.ECONNREFUSED
    strerror = getattr(cause, "strerror", None)
    return (strerror.lower() if strerror else type(exc).__name__), False


def nobody_there(error: BaseException | None) -> bool:
    """Whether ``error`` (raised by :func:`network_errors`) found no one at the address: its
    name does not exist in DNS or the connection was refused. On a first call that is a
    wrong endpoint, not a passing fault; a timeout may be either."""
    if not isinstance(error, ConnectFailed) or not isinstance(
        error.__cause__, _aiohttp().ClientConnectorError
    ):
        return False
    return _connect_words(error.__cause__)[1]


@contextmanager
def network_errors(where: str) -> Iterator[None]:
    """Translate aiohttp's (and the socket's) errors raised inside into ours.

    ``where`` says what was being talked to, for the message. ``what`` on the raised error
    says why in a few words for a connect failure (``DNS name not found``, ``connection
    refused ...``) and keeps aiohttp's class name otherwise; it is what a retry line shows.
    Disk errors (other ``OSError``\\ s) and our own errors pass through untouched.
    """
    try:
        yield
    except NetworkError:
        raise
    except Exception as exc:
        for foreign, ours, words in _aiohttp_map():
            if isinstance(exc, foreign):
                what = type(exc).__name__
                if ours is ConnectFailed and isinstance(exc, _aiohttp().ClientConnectorError):
                    what = _connect_words(exc)[0]
                raise ours(f"{where}: {words} ({what})", what=what) from exc
        raise
