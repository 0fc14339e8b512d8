"""What the simulator should do wrong (``Faults``) and what it saw (``Stats``).

Every field of ``Faults`` defaults to "off". Tests change fields at any time; the change takes
effect at the next request (or the next body chunk, for throttling).

Counted faults (``reset_*``, ``stall_*``, ``truncate_*``, ``error_*``, ``api_error_*``,
``length_lie*``, ``encoding*``, ``header_trickle*``, ``chunked_overrun*``) fire on the next
``*_count`` responses they apply to (``length_lie`` and ``chunked_overrun`` to 206 answers
only). When the count runs out the fault disarms
itself: its trigger field goes back to ``None`` and its count back to 1, so a test can check
``faults.reset_after_bytes is None`` to see that it fired, and re-arm it by setting the trigger
again. A negative count never runs out. A body fault (reset/stall/truncate) only counts when
the response body is long enough for it to fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass
class Faults:
    """Mutable fault switches for the API and the object store."""

    # --- RDS API / IAM --------------------------------------------------------------------
    api_rate_per_minute: int | None = None  # 429 APIG.0308 beyond this many calls per 60 s
    api_error_status: int | None = None  # e.g. 500, 503, 429 for the next api_error_count calls
    api_error_count: int = 1
    api_retry_after: float | None = None  # Retry-After header on injected API errors
    token_lifetime: float = 86400.0  # seconds an IAM-issued token stays valid
    api_body: bytes | None = None  # every RDS/IAM answer's body, verbatim (status unchanged)
    iam_echo: bool = False  # IAM's refusals quote the request body in their message

    # --- backup-files answer --------------------------------------------------------------
    link_lifetime: float = 600.0  # what link_expired_time advertises
    link_true_lifetime: float | None = None  # what the URL's Expires really allows
    expiry_override: str | None = None  # link_expired_time replaced verbatim
    wrong_kb_size: int = 0  # added to every reported KB size (files and backups)
    hidden_files: set[str] = field(default_factory=set)  # names left out of backup-files
    link_netloc: str | None = None  # host[:port] written into download links, verbatim

    # --- backups list ---------------------------------------------------------------------
    list_ignores_offset: bool = False  # every page is the first one, whatever offset says
    list_claims_total: int | None = None  # total_count claimed instead of the true one

    # --- clock ----------------------------------------------------------------------------
    server_clock_offset: float = 0.0  # seconds added to clock() for all the server shows/checks

    # --- object store ---------------------------------------------------------------------
    deny_objects: bool = False  # every object GET -> 403 AccessDenied
    fault_files: set[str] | None = None  # body/error faults only for these file names
    throttle_bps: int | None = None  # per-response rate cap, bytes per second
    reset_after_bytes: int | None = None  # RST the connection after this many body bytes
    reset_count: int = 1
    stall_after_bytes: int | None = None  # pause mid-body ...
    stall_seconds: float = 30.0  # ... for this long
    stall_count: int = 1
    error_status: int | None = None  # 500 / 503 / 429 ... with an OBS XML error body
    error_count: int = 1
    retry_after: float | None = None  # Retry-After header on injected object errors
    ignore_range: bool = False  # 200 + whole object whatever the Range says
    corrupt_at: int | None = None  # flip one byte at this object offset, every time it is served
    corrupt_count: int = -1  # ... or only the next this many times (a transit error)
    truncate_after_bytes: int | None = None  # full Content-Length promised, fewer bytes sent
    truncate_count: int = 1
    change_after_bytes: int | None = None  # new content + ETag after this many bytes served
    length_lie: int | None = None  # 206: Content-Length (and the body) off by this many bytes
    length_lie_count: int = 1
    encoding: str | None = None  # Content-Encoding claimed on a body answer (bytes unchanged)
    encoding_count: int = 1
    header_trickle: float | None = None  # seconds between header lines of a body answer ...
    header_trickle_lines: int = 20  # ... made of this many lines before the real headers
    header_trickle_count: int = 1
    chunked_overrun: int | None = None  # 206 sent chunked, this many bytes past its range
    chunked_overrun_count: int = 1


class ObjectRequest(NamedTuple):
    """One entry of ``Stats.object_requests_log``."""

    name: str | None  # file name, None when the key was unknown / not parsed
    range: str | None
    if_match: str | None
    status: int
    accept_encoding: str | None = None


@dataclass
class Stats:
    """Counters the simulator keeps; tests read them, nothing resets them but ``reset()``."""

    api_calls: int = 0  # every RDS API call, whatever the answer
    backup_files_calls: int = 0
    backups_list_calls: int = 0
    instances_list_calls: int = 0
    iam_calls: int = 0
    api_status_counts: dict[int, int] = field(default_factory=dict)
    auth_failures: int = 0  # 401s from the RDS API, all causes
    signature_failures: int = 0  # AK/SK signatures that did not verify (incl. skew)
    ak_locked_responses: int = 0  # answers "AK access failed to reach the limit"
    api_rate_limited: int = 0  # 429 APIG.0308 from api_rate_per_minute
    links_issued: int = 0

    object_requests: int = 0
    object_bytes_sent: int = 0  # body bytes actually written to the socket
    object_status_counts: dict[int, int] = field(default_factory=dict)
    object_requests_log: list[ObjectRequest] = field(default_factory=list)
    forbidden_header_requests: int = 0
    object_active: int = 0  # object responses in progress right now
    object_max_concurrent: int = 0  # the most ever in progress at once
    resets: int = 0
    stalls: int = 0
    truncations: int = 0
    header_trickles: int = 0  # body answers whose headers came one line at a time
    content_changes: int = 0  # by change_after_bytes or change_content()

    def reset(self) -> None:
        """Zero every counter (handy between phases of one test)."""
        fresh = Stats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
