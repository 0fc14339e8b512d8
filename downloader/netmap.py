"""The one place where aiohttp's exceptions become rds-backup's (as httpx's
``map_httpcore_exceptions`` does): every HTTP exchange, with the object store, the RDS API
or IAM, runs inside :func:`network_errors`, and callers above it catch only
:class:`~downloader.errors.NetworkError` and its leaves.

Most specific first: aiohttp's TLS errors are also connection errors, and its
``ServerTimeoutError`` is both a timeout and a disconnection.
"""

from __future__ import annotations

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


@contextmanager
def network_errors(where: str) -> Iterator[None]:
    """Translate aiohttp's (and the socket's) errors raised inside into ours.

    ``where`` says what was being talked to, for the message. ``what`` on the raised error
    keeps aiohttp's class name, which is what a retry line shows; disk errors (other
    ``OSError``\\ s) and our own errors pass through untouched.
    """
    try:
        yield
    except NetworkError:
        raise
    except Exception as exc:
        for foreign, ours, words in _MAP:
            if isinstance(exc, foreign):
                raise ours(
                    f"{where}: {words} ({type(exc).__name__})", what=type(exc).__name__
                ) from exc
        raise
