"""Keep credentials out of everything rds-backup prints or logs.

Two kinds of secret are scrubbed:

* strings registered at run time (secret key, security token, IAM token): replaced by ``***``
  wherever they appear, raw or percent-encoded;
* credentials recognisable by shape: the query of a presigned link (OBS V2, S3 V2, SigV4), the
  values of ``Authorization``/``X-Auth-Token``/``X-Security-Token``/``X-Subject-Token`` headers,
  the ``Access=`` key id inside an ``SDK-HMAC-SHA256`` authorization value, and ``user:pass@``
  in URLs.

A presigned OBS link is a bearer credential until it expires (facts sheet §7.4), so it is never
logged whole: :func:`safe_url` keeps ``scheme://host/path`` and replaces any query.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

__all__ = [
    "REDACTED",
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
    "redact",
    "register_secret",
    "safe_url",
    "secret_variants",
]

REDACTED = "***"
MIN_SECRET_LEN = 4

# An http(s) URL up to the first character that cannot be part of it in logs and reprs.
_URL_RE = re.compile(r"""(?i)\bhttps?://[^\s"'<>`\\]+""")

# Query parameters that make a query string a credential.
_SIGNED_QUERY_RE = re.compile(
    r"""(?ix)(?:^|[?&;])(?:
        signature | accesskeyid | awsaccesskeyid | expires
        | x-amz-[a-z0-9-]+ | x-obs-security-token | x-amz-security-token
        | x-obs-[a-z0-9-]*signature | policy
    )="""
)

# The same parameters outside a recognisable URL (a query string logged alone, a yarl repr cut
# short): keep the name, hide the value.
_LOOSE_PARAM_RE = re.compile(
    r"""(?ix)(?<![a-z0-9-])(
        signature | accesskeyid | awsaccesskeyid
        | x-amz-signature | x-amz-credential | x-amz-security-token | x-obs-security-token
    )=([^&\s"'<>,;]+)"""
)

# Header values, in "Name: value" lines and in dict reprs ('Name': 'value').
_HEADER_RE = re.compile(
    r"""(?ix)
    (?P<name>["']?(?:authorization|proxy-authorization|x-auth-token|x-security-token
                   |x-subject-token|x-obs-security-token|x-amz-security-token)["']?)
    (?P<sep>\s*[:=]\s*)
    (?P<quote>["']?)
    (?P<value>[^"'\r\n]+)
    """
)

# The access key id inside an SDK-HMAC-SHA256 authorization value seen outside a header.
_SDK_ACCESS_RE = re.compile(r"(?i)(SDK-HMAC-SHA256\s+Access=)([^,\s\"']+)")

# userinfo in a URL: scheme://user:password@host
_USERINFO_RE = re.compile(r"(?i)(\bhttps?://)[^/\s@\"'<>]+@")


def _scrub_url(match: re.Match[str]) -> str:
    url = match.group(0)
    url = _USERINFO_RE.sub(lambda m: m.group(1) + REDACTED + "@", url)
    q = url.find("?")
    if q < 0:
        return url
    query = url[q:]
    if _SIGNED_QUERY_RE.search(query):
        return url[:q] + "?<redacted>"
    return url


def _scrub_header(match: re.Match[str]) -> str:
    return f"{match.group('name')}{match.group('sep')}{match.group('quote')}{REDACTED}"


class Redactor:
    """A set of secrets to hide plus the shape rules above; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str | None) -> None:
        """Hide ``secret`` from now on; empty and very short strings (< 4 chars) are ignored."""
        if not secret or len(secret) < MIN_SECRET_LEN:
            return
        variants = secret_variants(secret)
        with self._lock:
            if variants <= self._secrets:
                return
            self._secrets |= {v for v in variants if len(v) >= MIN_SECRET_LEN}
            # Longest first, so a secret that contains another is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def clear(self) -> None:
        """Forget every registered secret (tests, or a new run in the same process)."""
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def redact(self, text: str) -> str:
        """Return ``text`` with registered secrets and credential-shaped values replaced."""
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _URL_RE.sub(_scrub_url, text)
        text = _HEADER_RE.sub(_scrub_header, text)
        text = _SDK_ACCESS_RE.sub(lambda m: m.group(1) + REDACTED, text)
        text = _LOOSE_PARAM_RE.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
        return text

    def redact_value(self, value: object) -> object:
        """Redact strings, recursing into dicts, lists and tuples; other values pass through."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.redact_value(v) for v in value)
        return value


def _json_escaped(text: str) -> set[str]:
    """``text`` as JSON string content, in the spellings serializers use: ``\\uXXXX`` for
    non-ASCII in lower or upper case hex, or UTF-8 as it is, ``/`` plain or as ``\\/``."""
    ascii_form = json.dumps(text)[1:-1]
    forms = {ascii_form, json.dumps(text, ensure_ascii=False)[1:-1]}
    forms.add(re.sub(r"\\u[0-9a-f]{4}", lambda m: m[0][:2] + m[0][2:].upper(), ascii_form))
    return forms | {f.replace("/", "\\/") for f in forms}


def secret_variants(secret: str) -> set[str]:
    """Every spelling of ``secret`` that an echo of a request may show: as sent,
    percent-encoded, and JSON-escaped once or twice (a password with ``"``, ``\\`` or
    non-ASCII characters, echoed inside an error message that is itself a JSON string)."""
    once = _json_escaped(secret)
    twice = {v for form in once for v in _json_escaped(form)}
    return {secret, quote(secret, safe=""), quote(secret, safe="/")} | once | twice


def safe_url(url: str) -> str:
    """``scheme://host/path`` of ``url``, with ``?<redacted>`` in place of any query.

    User info and fragments are dropped. Use this whenever a link is shown or logged.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable url>"
    if not parts.scheme or not host:
        # Not an absolute URL: keep the path part only, never the query.
        return url.split("?", 1)[0].split("#", 1)[0] + ("?<redacted>" if "?" in url else "")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    tail = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{tail}"


REDACTOR = Redactor()
"""The process-wide redactor used by :class:`RedactingFilter` and the CLI."""


def register_secret(secret: str | None) -> None:
    """Add ``secret`` to the process-wide :data:`REDACTOR`."""
    REDACTOR.add(secret)


def redact(text: str) -> str:
    """Redact ``text`` with the process-wide :data:`REDACTOR`."""
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the message, its args, structured fields and tracebacks.

    The message is formatted first (``msg % args``) and then redacted, so a secret passed as an
    argument is caught too; afterwards ``args`` is empty. A traceback is rendered once into
    ``exc_text`` (redacted) and ``exc_info`` is cleared, so no formatter can render the raw
    exception again.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor if redactor is not None else REDACTOR

    def filter(self, record: logging.LogRecord) -> bool:
        r = self._redactor
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the message or its secrets
            message = f"{record.msg!s} {record.args!r}"
        record.msg = r.redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = r.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = r.redact(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = {str(k): r.redact_value(v) for k, v in fields.items()}
        return True
