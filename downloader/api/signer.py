"""SDK-HMAC-SHA256 request signing, exactly as huaweicloudsdkcore's ``Signer`` signs.

Pure: request parts in, headers out. The canonical query built here is also the query
string that must be sent on the wire (the SDK does the same), so callers use
:func:`canonical_query` to build the URL and must not let the HTTP library re-encode it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

QueryParams = Iterable[tuple[str, str]]


def _quote(value: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX, as the SDK's urlencode does.
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """The path as signed: each segment re-quoted, always ending in ``/``."""
    uri = "/".join(_quote(seg) for seg in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: QueryParams) -> str:
    """Sorted ``k=v`` pairs, keys and values quoted; also the query to send."""
    pairs = sorted((str(k), str(v)) for k, v in params)
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    # The SDK leaves out any header whose name contains "_".
    return sorted(k.lower() for k in headers if "_" not in k)


def payload_hash(body: bytes, headers: Mapping[str, str]) -> str:
    """The last line of the canonical request, as the SDK's ``_process_hash_payload``: an
    empty body is always hashed (``UNSIGNED-PAYLOAD`` only stands in for a body), else an
    ``X-Sdk-Content-Sha256`` header's value wins over the body's hash."""
    if not body:
        return EMPTY_SHA256
    declared = next((v for k, v in headers.items() if k.lower() == "x-sdk-content-sha256"), "")
    return declared or hashlib.sha256(body).hexdigest()


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: QueryParams,
    headers: Mapping[str, str],
    body: bytes,
    ak: str,
    sk: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """Return ``headers`` plus ``Host``, ``X-Sdk-Date`` and ``Authorization``.

    ``host`` is the URL's netloc including a non-default port. An ``X-Sdk-Date`` already in
    ``headers`` is used as is (deterministic signing for tests).
    """
    out = dict(headers)
    lower = {k.lower(): k for k in out}
    if "x-sdk-date" not in lower:
        moment = now if now is not None else datetime.now(UTC)
        out[DATE_HEADER] = moment.astimezone(UTC).strftime(DATE_FORMAT)
    if "host" not in lower:
        out["Host"] = host
    content_type = next((v for k, v in out.items() if k.lower() == "content-type"), None)
    if content_type is not None and not content_type.startswith(
        ("application/json", "application/bson")
    ):
        out["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"

    by_lower = {k.lower(): str(v).strip() for k, v in out.items()}
    names = signed_header_names(out)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            "".join(f"{n}:{by_lower[n]}\n" for n in names),
            ";".join(names),
            payload_hash(body, out),
        ]
    )
    date = by_lower["x-sdk-date"]
    string_to_sign = "\n".join(
        [ALGORITHM, date, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signature = hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """Split an ``Authorization`` header into (access key, signed headers, signature)."""
    if not value.startswith(ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1 :].split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = val
    try:
        return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError:
        return None
