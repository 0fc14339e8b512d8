"""Small helpers shared by the simulator's API and object-store handlers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import quote


def http_date(ts: float) -> str:
    """RFC 1123 date, as in ``Date`` and ``Last-Modified`` headers."""
    return formatdate(ts, usegmt=True)


def request_id() -> str:
    return uuid.uuid4().hex


def obs_request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def utc_string(ts: float, fmt: str = "%Y-%m-%dT%H:%M:%S+0000") -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def obs_key(backup_id: str, name: str) -> str:
    """The object key a file lives under in the simulated bucket."""
    return f"{backup_id}/{name}"


def obs_signature(sk: str, method: str, expires: str, bucket: str, key: str) -> str:
    """OBS V2 query-auth signature, already URL-encoded as it appears in the link.

    StringToSign = VERB \\n Content-MD5 \\n Content-Type \\n Expires \\n CanonicalizedResource
    (no ``x-obs-*`` headers for a plain GET link), per the OBS "Authentication of Signature in
    a URL" page. ``quote(..., safe="")`` turns ``+ / =`` into ``%2B %2F %3D``.
    """
    string_to_sign = f"{method}\n\n\n{expires}\n/{bucket}/{key}"
    digest = hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return quote(base64.b64encode(digest).decode(), safe="")
