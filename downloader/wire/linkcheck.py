"""Whether a presigned download link is one a GET can be sent to. Pure, no I/O.

A link comes from an API answer or a links file, so it is untrusted text: a port of 99999 or
``abc`` makes yarl raise ``ValueError`` when the request is built, and an empty or over-long
host label (``a..b``, a 300-character label, fullwidth dots that IDNA turns into an empty
label) makes the resolver's IDNA encoding raise ``UnicodeError`` inside the connector. Both
escape as foreign exceptions. Asking first turns them into one failed file, named, with the
rest of the run going on; the words never echo the link (it is a bearer credential).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", re.ASCII)
MAX_HOST = 253  # RFC 1035 §2.3.4, without the trailing dot


def link_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched as it is, in a few words; None when it can."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "it is not an http(s) URL"
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return "its host is not a valid IPv6 address"
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            return "its host is followed by something other than a port"
    else:
        host, colon, port_text = netloc.partition(":")
        port = port_text if colon else None
        problem = _host_problem(host)
        if problem is not None:
            return problem
    if port is not None and port != "":
        if not _PORT.fullmatch(port) or not 0 < int(port) <= 65535:
            return "its port is not a number from 1 to 65535"
    return None


def _host_problem(host: str) -> str | None:
    if not host:
        return "it has no host"
    if not host.isascii():
        # Object store hosts are ASCII; IDNA would rewrite this one (fullwidth dots become
        # dots), so the host connected to would not be the one written.
        return "its host is not plain ASCII"
    name = host[:-1] if host.endswith(".") else host
    if len(name) > MAX_HOST:
        return f"its host is longer than {MAX_HOST} characters"
    for label in name.split("."):
        if not label:
            return "its host has an empty label"
        if len(label) > 63:
            return "its host has a label longer than 63 characters"
        if not _LABEL.fullmatch(label):
            return "its host has a label with characters a host name cannot hold"
    return None
