"""The one place where aiohttp's exceptions become rds-backup's (as httpx's
``map_httpcore_exceptions`` does): every HTTP exchange, with the object store, the RDS API
or IAM, runs inside :func:`network_errors`, and callers above it catch only
:class:`~downloader.errors.NetworkError` and its leaves.

Most specific first: aiohttp's TLS errors are also connection errors, and its
``ServerTimeoutError`` is both a timeout and a disconnection.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from downloader.errors import (
    BodyIncomplete,
    ConnectFailed,
    NetworkError,
    NetworkTimeout,
    TlsFailed,
)

# What may escape an aiohttp call before translation (for code that must act, e.g. keep the
# bytes already received, and then re-raise into network_errors).
FOREIGN: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, ConnectionError)

_MAP: tuple[tuple[type[BaseException], type[NetworkError], str], ...] = (
    (aiohttp.ClientSSLError, TlsFailed, "TLS failure"),
    (aiohttp.ServerTimeoutError, NetworkTimeout, "timed out"),
    (TimeoutError, NetworkTimeout, "timed out"),
    (aiohttp.ClientConnectorError, ConnectFailed, "cannot connect"),
    (aiohttp.ClientPayloadError, BodyIncomplete, "body cut short"),
    (aiohttp.ServerDisconnectedError, BodyIncomplete, "server disconnected"),
    (aiohttp.ClientError, NetworkError, "HTTP client error"),
    (ConnectionError, ConnectFailed, "connection lost"),
)

# Failures before any request left this machine: DNS, a refused connection, the TLS
# handshake, a connect timeout (aiohttp >= 3.10 tells that one from a read timeout).
_NOT_CONNECTED: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    *((aiohttp.ConnectionTimeoutError,) if hasattr(aiohttp, "ConnectionTimeoutError") else ()),
)


def never_connected(error: BaseException | None) -> bool:
    """Whether ``error`` (raised by :func:`network_errors`) failed before a connection was
    made: then another address of the same service may answer, and nothing was sent."""
    return isinstance(error, NetworkError) and isinstance(error.__cause__, _NOT_CONNECTED)


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
        error.__cause__, aiohttp.ClientConnectorError
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
        for foreign, ours, words in _MAP:
            if isinstance(exc, foreign):
                what = type(exc).__name__
                if ours is ConnectFailed and isinstance(exc, aiohttp.ClientConnectorError):
                    what = _connect_words(exc)[0]
                raise ours(f"{where}: {words} ({what})", what=what) from exc
        raise
