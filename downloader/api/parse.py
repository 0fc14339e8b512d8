"""JSON answers of the RDS and IAM APIs -> our value objects and errors. Pure, no I/O
except :func:`load_links_file`.

Every shape problem raises :class:`ResponseFormatError` naming the field (``files[2].size``);
unknown extra fields are ignored, as the official SDK's models ignore them. An unparsable
``link_expired_time`` is not an error: the link is kept with an unknown expiry and the listing
carries a warning naming the file (the vendor's own doc example, ``2018-08-016T10:15:14+0800``,
is unparsable).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

from downloader.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    ApiThrottledError,
    ApiUnavailableError,
    MalformedJsonError,
    ResponseFormatError,
    UsageError,
)
from downloader.models import Backup, BackupFile, FileListing, Instance
from downloader.text.redact import secret_variants
from downloader.text.safejson import load_json

# Huawei documents ``yyyy-mm-ddThh:mm:ssZ`` where Z is a numeric offset like +0800 (facts §1,
# §7); IAM answers ``2020-01-04T09:05:22.701000Z``. Accept both, with ``+08:00`` too. Only this
# shape: ``fromisoformat`` alone would also take week dates, the basic format and no seconds.
_TIME_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)"
    r"\s*(?P<zone>[Zz]|[+-]\d{2}:?\d{2})",
    re.ASCII,
)

MAX_MESSAGE = 300
MAX_LINKS_FILE = 64 * 1024 * 1024

_T = TypeVar("_T")

# RDS error codes that mean "no such backup/instance" even when sent with HTTP 400 (facts §3).
_NOT_FOUND_CODES = frozenset(
    {"DBS.200002", "DBS.200045", "DBS.201010", "DBS.201203", "DBS.280214", "APIGW.0101"}
)
_THROTTLED_CODES = frozenset({"APIG.0308"})
_AUTH_CODES = frozenset({"APIG.0301", "DBS.280056"})

# Field-name pairs tried in order, as huaweicloudsdkcore's DefaultExceptionHandler does, plus
# the legacy v1 pair.
_ERROR_PAIRS = (
    ("error_code", "error_msg"),
    ("errorCode", "errorMsg"),
    ("code", "message"),
    ("errCode", "externalMessage"),
)


def parse_time(value: str) -> datetime | None:
    """Parse a Huawei API timestamp into an aware datetime; ``None`` if it is not one.

    Accepts ``+0800``, ``+08:00`` and ``Z`` offsets, with or without fractional seconds
    (more than 6 fractional digits are truncated). A timestamp without an offset is refused:
    guessing its zone could move an expiry by hours.
    """
    m = _TIME_RE.fullmatch(value.strip())
    if m is None:
        return None
    # Python 3.11's fromisoformat reads ``+0800`` and ``Z`` and truncates a long fraction; it
    # refuses a lower-case ``z`` and wants the parts adjacent, hence the rebuilt string.
    try:
        return datetime.fromisoformat(f"{m['date']}T{m['time']}{m['zone'].upper()}")
    except ValueError:  # Feb 30, hour 25, offset +2500 ...
        return None


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _obj(value: object, field: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ResponseFormatError(field, f"expected an object, got {_type_name(value)}")
    return value


def _list(value: object, field: str) -> list[object]:
    if not isinstance(value, list):
        raise ResponseFormatError(field, f"expected a list, got {_type_name(value)}")
    return value


def _str(obj: Mapping[str, object], key: str, field: str, *, nonempty: bool = False) -> str:
    if key not in obj:
        raise ResponseFormatError(field, "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise ResponseFormatError(field, f"expected a string, got {_type_name(value)}")
    if nonempty and not value.strip():
        raise ResponseFormatError(field, "empty")
    return value


def _opt_str(obj: Mapping[str, object], key: str, field: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResponseFormatError(field, f"expected a string, got {_type_name(value)}")
    return value


def _size(obj: Mapping[str, object], key: str, field: str, *, required: bool) -> int:
    if key not in obj or obj[key] is None:
        if required:
            raise ResponseFormatError(field, "missing")
        return 0
    value = obj[key]
    # A whole number written as a float (``69.0``) is that number: JSON has one number type,
    # and an encoder that emits doubles writes sizes so.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    # bool is an int in Python, but never a size.
    if isinstance(value, bool) or not isinstance(value, int):
        shown = "a fraction" if isinstance(value, float) else _type_name(value)
        raise ResponseFormatError(field, f"expected an integer, got {shown}")
    if value < 0:
        raise ResponseFormatError(field, f"negative size {value}")
    return value


def _is_http_url(link: str) -> bool:
    try:
        parts = urlsplit(link)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def parse_backup_files(obj: object, *, server_date: datetime | None = None) -> FileListing:
    """Validate a ``GET /v3/{project_id}/backup-files`` answer (facts §1).

    An empty ``files`` list is a valid (empty) listing; deciding that nothing to download is an
    error is the engine's job.
    """
    root = _obj(obj, "response")
    if "files" not in root:
        raise ResponseFormatError("files", "missing")
    items = _list(root["files"], "files")
    bucket = _opt_str(root, "bucket", "bucket") or ""
    files: list[BackupFile] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"files[{i}]"
        entry = _obj(item, where)
        name = _str(entry, "name", f"{where}.name", nonempty=True)
        if name in seen:
            raise ResponseFormatError(f"{where}.name", f"duplicate of files[{seen[name]}].name")
        seen[name] = i
        size_kb = _size(entry, "size", f"{where}.size", required=True)
        link = _str(entry, "download_link", f"{where}.download_link", nonempty=True)
        if not _is_http_url(link):
            # Never echo the link: it is a bearer credential until it expires.
            raise ResponseFormatError(f"{where}.download_link", "not an http(s) URL")
        raw_expiry = _opt_str(entry, "link_expired_time", f"{where}.link_expired_time")
        expiry = parse_time(raw_expiry) if raw_expiry is not None else None
        if expiry is None:
            shown = "missing" if raw_expiry is None else f"unparsable ({_clip(raw_expiry, 40)})"
            warnings.append(
                f"{name}: link_expired_time {shown}; link expiry unknown, "
                "it will be refreshed when the object store refuses it"
            )
        database = _opt_str(entry, "database_name", f"{where}.database_name")
        files.append(
            BackupFile(
                name=name,
                size_kb=size_kb,
                download_link=link,
                link_expired_time=expiry,
                database_name=database or None,
            )
        )
    return FileListing(
        files=tuple(files), bucket=bucket, server_date=server_date, warnings=tuple(warnings)
    )


def _time_field(entry: Mapping[str, object], key: str, field: str) -> datetime | None:
    raw = _opt_str(entry, key, field)
    return parse_time(raw) if raw is not None else None


def _datastore(entry: Mapping[str, object], where: str) -> tuple[str | None, str | None]:
    """The entry's ``datastore``: (engine, version), each None when absent or empty."""
    datastore = entry.get("datastore")
    if datastore is None:
        return None, None
    ds = _obj(datastore, f"{where}.datastore")
    engine = _opt_str(ds, "type", f"{where}.datastore.type") or None
    version = _opt_str(ds, "version", f"{where}.datastore.version") or None
    return engine, version


def parse_backup(obj: object, where: str = "backup") -> Backup:
    """One ``backups[]`` entry of the ListBackups answer (facts §2)."""
    entry = _obj(obj, where)
    engine, engine_version = _datastore(entry, where)
    databases: list[str] = []
    raw_dbs = entry.get("databases")
    if raw_dbs is not None:
        for j, db in enumerate(_list(raw_dbs, f"{where}.databases")):
            db_where = f"{where}.databases[{j}]"
            databases.append(_str(_obj(db, db_where), "name", f"{db_where}.name"))
    return Backup(
        id=_str(entry, "id", f"{where}.id", nonempty=True),
        name=_opt_str(entry, "name", f"{where}.name") or "",
        instance_id=_opt_str(entry, "instance_id", f"{where}.instance_id") or "",
        type=_str(entry, "type", f"{where}.type"),
        size_kb=_size(entry, "size", f"{where}.size", required=False),
        status=_str(entry, "status", f"{where}.status"),
        begin_time=_time_field(entry, "begin_time", f"{where}.begin_time"),
        end_time=_time_field(entry, "end_time", f"{where}.end_time"),
        engine=engine,
        engine_version=engine_version,
        databases=tuple(databases),
    )


def parse_backups(obj: object) -> tuple[list[Backup], int]:
    """Validate one page of ``GET /v3/{project_id}/backups``: (backups, total_count)."""
    return _page(obj, "backups", parse_backup)


def parse_instance(obj: object, where: str = "instance") -> Instance:
    """One ``instances[]`` entry of the ListInstances answer."""
    entry = _obj(obj, where)
    engine, engine_version = _datastore(entry, where)
    return Instance(
        id=_str(entry, "id", f"{where}.id", nonempty=True),
        name=_opt_str(entry, "name", f"{where}.name") or "",
        status=_opt_str(entry, "status", f"{where}.status") or "",
        type=_opt_str(entry, "type", f"{where}.type") or "",
        engine=engine,
        engine_version=engine_version,
    )


def parse_instances(obj: object) -> tuple[list[Instance], int]:
    """Validate one page of ``GET /v3/{project_id}/instances``: (instances, total_count)."""
    return _page(obj, "instances", parse_instance)


def _page(obj: object, key: str, parse: Callable[[object, str], _T]) -> tuple[list[_T], int]:
    """One page of a listing: its ``key`` items, each through ``parse``, and the
    ``total_count`` over every page (the page's own length when the answer gives none)."""
    root = _obj(obj, "response")
    if key not in root:
        raise ResponseFormatError(key, "missing")
    items = _list(root[key], key)
    parsed = [parse(item, f"{key}[{i}]") for i, item in enumerate(items)]
    if "total_count" in root:
        total = _size(root, "total_count", "total_count", required=True)
    else:
        total = len(parsed)
    return parsed, total


# ---------------------------------------------------------------------------------- errors


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def _scalar(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _find_error(obj: Mapping[str, object], depth: int = 0) -> tuple[str | None, str | None]:
    for code_key, msg_key in _ERROR_PAIRS:
        if code_key in obj and msg_key in obj:
            return _scalar(obj[code_key]), _scalar(obj[msg_key])
    if depth < 4:
        for value in obj.values():
            if isinstance(value, dict):
                code, msg = _find_error(value, depth + 1)
                if code is not None or msg is not None:
                    return code, msg
    return None, None


def _body_request_id(obj: Mapping[str, object], depth: int = 0) -> str | None:
    """The API gateway also puts ``request_id`` in its error bodies (facts §3); some answers
    carry it only there, beside the code (top level, or nested like the error pair)."""
    found = _scalar(obj.get("request_id"))
    if found or depth >= 4:
        return found or None
    for value in obj.values():
        if isinstance(value, dict) and (nested := _body_request_id(value, depth + 1)):
            return nested
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, val in headers.items():
        if key.lower() == lower:
            return val
    return None


def _redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (longest first) in ``text`` with ``***``, in each spelling an
    echo of the request may use (JSON-escaped, percent-encoded: :func:`secret_variants`)."""
    spellings = {v for s in secrets if s for v in secret_variants(s)}
    for secret in sorted(spellings, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def parse_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Iterable[str] = (),
    context: str | None = None,
) -> ApiError:
    """Turn an error answer (status >= 400) into the matching :class:`ApiError` leaf.

    The message is one line, truncated, with ``secrets`` (an AK echoed by
    ``ak not exist`` ...) redacted.
    """
    request_id = _header(headers, "X-Request-Id") or _header(headers, "X-IAM-Trace-Id")
    code: str | None = None
    msg: str | None = None
    text = body[:65536].decode("utf-8", errors="replace")
    try:
        decoded = load_json(text, "error answer")
    except MalformedJsonError:
        decoded = None
    if isinstance(decoded, dict):
        code, msg = _find_error(decoded)
        request_id = request_id or _body_request_id(decoded)
    if msg is None and decoded is None:
        msg = text.strip() or None
    secret_list = list(secrets)
    detail = _clip(_redact(msg, secret_list)) if msg else None
    code = _clip(_redact(code, secret_list), 64) if code else None
    request_id = _clip(request_id, 128) if request_id else None

    cls: type[ApiError]
    if status in (401, 403) or code in _AUTH_CODES:
        cls, prefix = ApiAuthError, "credentials refused"
    elif status == 429 or code in _THROTTLED_CODES:
        cls, prefix = ApiThrottledError, "API rate limit reached"
    elif status == 404 or code in _NOT_FOUND_CODES:
        cls, prefix = ApiNotFoundError, "unknown backup, project or endpoint"
    elif status >= 500:
        cls, prefix = ApiUnavailableError, "API unavailable"
    else:
        cls, prefix = ApiError, "API request refused"
    message = f"{prefix}: {detail}" if detail else prefix
    if context:
        message = f"{context}: {message}"
    return cls(message, status=status, error_code=code, request_id=request_id)


# ------------------------------------------------------------------------------ links file


def load_links_file(path: str | Path, *, stdin: TextIO | None = None) -> FileListing:
    """Read a saved backup-files answer (``--links-file``); ``-`` reads standard input."""
    name = "standard input" if str(path) == "-" else str(path)
    try:
        if str(path) == "-":
            text = (stdin if stdin is not None else sys.stdin).read(MAX_LINKS_FILE + 1)
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(MAX_LINKS_FILE + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UsageError(f"cannot read links file {name}: {reason}") from exc
    if len(text) > MAX_LINKS_FILE:
        raise UsageError(f"links file {name} is larger than {MAX_LINKS_FILE // 2**20} MiB")
    obj = load_json(text, f"links file {name}")
    try:
        return parse_backup_files(obj)
    except ResponseFormatError as exc:
        raise UsageError(
            f"links file {name} is not a backup-files answer: {exc.field}: {exc.problem}"
        ) from exc
