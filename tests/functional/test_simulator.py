"""The simulator over real loopback HTTP: API auth and shapes, object store rules, faults."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from yarl import URL

from downloader.api.signer import canonical_query, sign
from downloader.sim import Faults, Simulator, content_bytes, default_catalog, serve
from downloader.sim.catalog import (
    MYSQL_BUILDING,
    MYSQL_FULL,
    MYSQL_INSTANCE,
    MYSQL_MANY,
    MYSQL_MULTIPART,
    SQLSERVER_DB,
    SQLSERVER_INSTANCE,
)

BIG = f"{MYSQL_FULL}_full_2024-05-20_16-00-00_1.qp"  # 3 MiB + 123
ONE_MIB = f"{MYSQL_FULL}_full_2024-05-20_16-00-00_2.qp"  # 1 MiB + 1
SMALL = f"{MYSQL_FULL}_full_2024-05-20_16-00-00_meta.qp"  # 777
EMPTY = f"{MYSQL_FULL}_full_2024-05-20_16-00-00_empty.qp"  # 0


class Clock:
    """An injectable server clock."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def clock_sim() -> AsyncIterator[tuple[Simulator, Clock]]:
    clock = Clock()
    simulator = Simulator(clock=clock)
    await simulator.start()
    try:
        yield simulator, clock
    finally:
        await simulator.stop()


# --- helpers -----------------------------------------------------------------------------------


def signed_headers(
    sim: Simulator,
    path: str,
    query: list[tuple[str, str]],
    *,
    sk: str | None = None,
    at: float | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Project-Id": sim.project_id}
    headers.update(extra or {})
    moment = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return sign(
        method="GET",
        host=URL(sim.endpoint).raw_authority,
        path=path,
        query=query,
        headers=headers,
        body=b"",
        ak=sim.ak,
        sk=sim.sk if sk is None else sk,
        now=moment,
    )


async def api_get(
    session: aiohttp.ClientSession,
    sim: Simulator,
    resource: str,
    query: list[tuple[str, str]],
    *,
    project: str | None = None,
    headers: Mapping[str, str] | None = None,
    **sign_kw: Any,
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    """GET an RDS API resource, AK/SK-signed unless ``headers`` is given."""
    path = f"/v3/{project or sim.project_id}/{resource}"
    if headers is None:
        headers = signed_headers(sim, path, query, **sign_kw)
    url = URL(f"{sim.endpoint}{path}?{canonical_query(query)}", encoded=True)
    async with session.get(url, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def links(
    session: aiohttp.ClientSession, sim: Simulator, backup_id: str = MYSQL_FULL
) -> dict[str, dict[str, Any]]:
    status, body, _ = await api_get(session, sim, "backup-files", [("backup_id", backup_id)])
    assert status == 200, body
    return {f["name"]: f for f in body["files"]}


async def fetch(
    session: aiohttp.ClientSession,
    link: str,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
) -> tuple[int, bytes, Mapping[str, str]]:
    async with session.request(method, URL(link, encoded=True), headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


def xml_code(body: bytes) -> str:
    match = re.search(rb"<Code>([^<]+)</Code>", body)
    assert match, body
    return match.group(1).decode()


# --- RDS API auth ------------------------------------------------------------------------------


async def test_aksk_signature_accepted_and_answer_shape(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    status, body, headers = await api_get(session, sim, "backup-files", [("backup_id", MYSQL_FULL)])
    assert status == 200
    assert headers["X-Request-Id"]
    assert headers["Date"]
    assert body["bucket"] == sim.bucket
    backup = sim.backups[MYSQL_FULL]
    assert [f["name"] for f in body["files"]] == [f.name for f in backup.files]
    sizes = {f["name"]: f["size"] for f in body["files"]}
    assert sizes == {BIG: 3 * 1024 + 1, ONE_MIB: 1025, SMALL: 1, EMPTY: 0}  # ceil(bytes/1024)
    for f in body["files"]:
        assert f["database_name"] == ""
        assert f["download_link"].startswith(f"{sim.endpoint}/obs/{sim.bucket}/")
        datetime.strptime(f["link_expired_time"], "%Y-%m-%dT%H:%M:%S%z")
        assert f["link_expired_time"].endswith("+0000")
    assert sim.stats.api_calls == 1
    assert sim.stats.backup_files_calls == 1


async def test_sqlserver_database_names(sim: Simulator, session: aiohttp.ClientSession) -> None:
    files = await links(session, sim, SQLSERVER_DB)
    assert sorted(f["database_name"] for f in files.values()) == ["hr", "inventory", "sales"]
    for f in sim.backups[SQLSERVER_DB].files:
        assert f.size % 1024 != 0


async def test_wrong_sk_rejected(sim: Simulator, session: aiohttp.ClientSession) -> None:
    status, body, headers = await api_get(
        session, sim, "backup-files", [("backup_id", MYSQL_FULL)], sk="wrong-secret"
    )
    assert status == 401
    assert body["error_code"] == "APIG.0301"
    assert "verify aksk signature fail" in body["error_msg"]
    assert headers["X-Request-Id"]
    assert sim.stats.signature_failures == 1


async def test_tampered_query_rejected(sim: Simulator, session: aiohttp.ClientSession) -> None:
    path = f"/v3/{sim.project_id}/backup-files"
    headers = signed_headers(sim, path, [("backup_id", MYSQL_FULL)])
    url = URL(f"{sim.endpoint}{path}?backup_id={SQLSERVER_DB}", encoded=True)
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 401


async def test_ak_locked_after_more_than_five_failures(
    clock_sim: tuple[Simulator, Clock], session: aiohttp.ClientSession
) -> None:
    sim, clock = clock_sim
    q = [("backup_id", MYSQL_FULL)]
    for _ in range(5):
        status, body, _ = await api_get(session, sim, "backup-files", q, sk="bad", at=clock.t)
        assert status == 401
        assert "verify aksk signature fail" in body["error_msg"]
    status, body, _ = await api_get(session, sim, "backup-files", q, sk="bad", at=clock.t)
    assert status == 401
    assert "AK access failed to reach the limit,forbidden" in body["error_msg"]
    # Locked: even a good signature is refused ...
    status, body, _ = await api_get(session, sim, "backup-files", q, at=clock.t)
    assert status == 401
    assert "reach the limit" in body["error_msg"]
    assert sim.stats.ak_locked_responses == 2
    # ... until five minutes have passed.
    clock.t += 301
    status, _, _ = await api_get(session, sim, "backup-files", q, at=clock.t)
    assert status == 200


async def test_success_resets_failure_count(sim: Simulator, session: aiohttp.ClientSession) -> None:
    q = [("backup_id", MYSQL_FULL)]
    for _ in range(2):
        for _ in range(5):
            assert (await api_get(session, sim, "backup-files", q, sk="bad"))[0] == 401
        assert (await api_get(session, sim, "backup-files", q))[0] == 200


async def test_sdk_date_too_far_from_server_clock(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    q = [("backup_id", MYSQL_FULL)]
    status, body, _ = await api_get(session, sim, "backup-files", q, at=time.time() - 16 * 60)
    assert status == 401
    assert "signature expired" in body["error_msg"]
    status, _, _ = await api_get(session, sim, "backup-files", q, at=time.time() - 10 * 60)
    assert status == 200


async def test_server_clock_skew_shows_in_date_and_breaks_signatures(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.faults.server_clock_offset = 3600.0
    q = [("backup_id", MYSQL_FULL)]
    status, body, headers = await api_get(session, sim, "backup-files", q)
    assert status == 401
    assert "signature expired" in body["error_msg"]
    server_date = parsedate_to_datetime(headers["Date"]).timestamp()
    assert abs(server_date - (time.time() + 3600)) < 5
    # A client that corrects for the skew (signs with server time) gets through.
    status, body, _ = await api_get(session, sim, "backup-files", q, at=server_date)
    assert status == 200
    expiry = datetime.strptime(body["files"][0]["link_expired_time"], "%Y-%m-%dT%H:%M:%S%z")
    assert abs(expiry.timestamp() - (time.time() + 3600 + 600)) < 5
    # Object store answers carry the skewed Date too.
    status, _, headers = await fetch(session, body["files"][0]["download_link"])
    assert status == 200
    assert abs(parsedate_to_datetime(headers["Date"]).timestamp() - server_date) < 5


async def test_security_token_must_be_signed(session: aiohttp.ClientSession) -> None:
    async with Simulator(security_token="TEMP-TOKEN") as sim:
        q = [("backup_id", MYSQL_FULL)]
        status, _, _ = await api_get(session, sim, "backup-files", q)
        assert status == 401
        extra = {"X-Security-Token": "TEMP-TOKEN"}
        status, _, _ = await api_get(session, sim, "backup-files", q, extra=extra)
        assert status == 200
        assert sim.env()["HUAWEICLOUD_SDK_SECURITY_TOKEN"] == "TEMP-TOKEN"


async def test_static_token_and_missing_auth(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    q = [("backup_id", MYSQL_FULL)]
    token = {"X-Auth-Token": sim.static_token}
    assert (await api_get(session, sim, "backup-files", q, headers=token))[0] == 200
    status, body, _ = await api_get(session, sim, "backup-files", q, headers={})
    assert status == 401
    assert body["error_code"] == "APIG.0301"
    assert "x-auth-token not found" in body["error_msg"]
    bogus = {"X-Auth-Token": "MIInot-a-token"}
    status, body, _ = await api_get(session, sim, "backup-files", q, headers=bogus)
    assert status == 401


def iam_body(user: str, password: str, domain: str) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": domain}}
                },
            },
            "scope": {"project": {"name": "sim-region-1"}},
        }
    }


async def test_iam_token_issued_used_and_expired(
    clock_sim: tuple[Simulator, Clock], session: aiohttp.ClientSession
) -> None:
    sim, clock = clock_sim
    sim.faults.token_lifetime = 3600
    url = f"{sim.endpoint}/v3/auth/tokens"
    bad = iam_body(sim.iam_user, "nope", sim.iam_domain)
    async with session.post(url, json=bad) as resp:
        assert resp.status == 401
        assert (await resp.json())["error_msg"]
    good = iam_body(sim.iam_user, sim.iam_password, sim.iam_domain)
    async with session.post(url, json=good) as resp:
        assert resp.status == 201
        token = resp.headers["X-Subject-Token"]
        body = await resp.json()
    assert body["token"]["project"]["id"] == sim.project_id
    expires = datetime.strptime(body["token"]["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(expires.replace(tzinfo=UTC).timestamp() - (clock.t + 3600)) < 2
    assert sim.stats.iam_calls == 2
    q = [("backup_id", MYSQL_FULL)]
    headers = {"X-Auth-Token": token}
    assert (await api_get(session, sim, "backup-files", q, headers=headers))[0] == 200
    clock.t += 3601
    status, body, _ = await api_get(session, sim, "backup-files", q, headers=headers)
    assert status == 401
    assert body["error_code"] == "APIG.0301"
    assert "token expires" in body["error_msg"]


# --- RDS API errors and listing ----------------------------------------------------------------


async def test_wrong_project_unknown_backup_and_bad_params(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await api_get(
        session, sim, "backup-files", [("backup_id", MYSQL_FULL)], project="0" * 32
    )
    assert (status, body["error_code"]) == (403, "DBS.200010")
    status, body, _ = await api_get(session, sim, "backup-files", [("backup_id", "f" * 36)])
    assert (status, body["error_code"]) == (404, "DBS.201010")
    status, body, _ = await api_get(session, sim, "backup-files", [])
    assert (status, body["error_code"]) == (400, "DBS.200001")
    status, body, _ = await api_get(session, sim, "backup-files", [("backup_id", MYSQL_BUILDING)])
    assert (status, body["error_code"]) == (409, "DBS.201205")


async def test_list_backups_paging_and_shape(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    seen: list[dict[str, Any]] = []
    for offset in (0, 3, 6):
        q = [("instance_id", MYSQL_INSTANCE), ("offset", str(offset)), ("limit", "3")]
        status, body, _ = await api_get(session, sim, "backups", q)
        assert status == 200
        assert body["total_count"] == 7
        seen += body["backups"]
    assert len(seen) == 7
    assert len({b["id"] for b in seen}) == 7
    full = next(b for b in seen if b["id"] == MYSQL_FULL)
    assert full["type"] == "auto"
    assert full["status"] == "COMPLETED"
    assert full["datastore"] == {"type": "MySQL", "version": "8.0"}
    assert full["size"] == -(-sim.backups[MYSQL_FULL].size // 1024)
    datetime.strptime(full["begin_time"], "%Y-%m-%dT%H:%M:%S%z")
    assert sim.stats.backups_list_calls == 3
    q = [("instance_id", MYSQL_INSTANCE), ("backup_type", "auto")]
    _, body, _ = await api_get(session, sim, "backups", q)
    assert {b["type"] for b in body["backups"]} == {"auto"}
    assert body["total_count"] == 2


async def test_list_backups_parameter_errors(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    for q in (
        [],
        [("instance_id", MYSQL_INSTANCE), ("limit", "0")],
        [("instance_id", MYSQL_INSTANCE), ("limit", "101")],
        [("instance_id", MYSQL_INSTANCE), ("begin_time", "2024-05-20T00:00:00+0800")],
    ):
        status, body, _ = await api_get(session, sim, "backups", q)
        assert (status, body["error_code"]) == (400, "DBS.200001"), q


async def test_status_filter_only_for_sqlserver(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    q = [("instance_id", MYSQL_INSTANCE), ("status", "COMPLETED")]
    _, body, _ = await api_get(session, sim, "backups", q)
    assert body["total_count"] == 7  # ignored, like the real API
    assert {b["status"] for b in body["backups"]} == {"COMPLETED", "BUILDING", "FAILED"}
    q = [("instance_id", SQLSERVER_INSTANCE), ("status", "COMPLETED")]
    _, body, _ = await api_get(session, sim, "backups", q)
    assert {b["status"] for b in body["backups"]} == {"COMPLETED"}
    assert body["total_count"] == 2
    db_level = next(b for b in body["backups"] if b["id"] == SQLSERVER_DB)
    assert db_level["databases"] == [{"name": "sales"}, {"name": "hr"}, {"name": "inventory"}]


async def test_list_time_window(sim: Simulator, session: aiohttp.ClientSession) -> None:
    q = [
        ("instance_id", MYSQL_INSTANCE),
        ("begin_time", "2024-05-20T14:00:00+0800"),  # 06:00 UTC
        ("end_time", "2024-05-21T02:00:00+0800"),  # 18:00 UTC
    ]
    status, body, _ = await api_get(session, sim, "backups", q)
    assert status == 200
    ids = {b["id"] for b in body["backups"]}
    assert MYSQL_FULL in ids
    assert MYSQL_MANY in ids  # began 12 h before 18:00 UTC, at the window's edge
    assert "ad17255ea0a712ca967518fa83cca95ebr01" not in ids  # a day older


async def test_api_rate_limit(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.api_rate_per_minute = 3
    q = [("backup_id", MYSQL_FULL)]
    for _ in range(3):
        assert (await api_get(session, sim, "backup-files", q))[0] == 200
    status, body, headers = await api_get(session, sim, "backup-files", q)
    assert (status, body["error_code"]) == (429, "APIG.0308")
    assert int(headers["Retry-After"]) >= 1
    assert sim.stats.api_rate_limited == 1


async def test_api_error_injection(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.api_error_status = 503
    sim.faults.api_error_count = 2
    sim.faults.api_retry_after = 1.5
    q = [("backup_id", MYSQL_FULL)]
    for _ in range(2):
        status, body, headers = await api_get(session, sim, "backup-files", q)
        assert status == 503
        assert headers["Retry-After"] == "2"
        assert body["error_code"]
    assert (await api_get(session, sim, "backup-files", q))[0] == 200
    assert sim.faults.api_error_status is None  # disarmed itself
    assert sim.stats.api_status_counts == {503: 2, 200: 1}


async def test_wrong_kb_size_hidden_file_and_expiry_override(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.faults.wrong_kb_size = 1
    sim.faults.hidden_files = {SMALL}
    sim.faults.expiry_override = "2018-08-016T10:15:14+0800"
    files = await links(session, sim)
    assert SMALL not in files
    assert files[BIG]["size"] == 3 * 1024 + 2
    assert files[BIG]["link_expired_time"] == "2018-08-016T10:15:14+0800"
    _, body, _ = await api_get(
        session, sim, "backups", [("instance_id", MYSQL_INSTANCE), ("backup_id", MYSQL_FULL)]
    )
    assert body["backups"][0]["size"] == -(-sim.backups[MYSQL_FULL].size // 1024) + 1


# --- object store ------------------------------------------------------------------------------


async def test_whole_object_headers_and_etag(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    files = await links(session, sim)
    status, body, headers = await fetch(session, files[BIG]["download_link"])
    assert status == 200
    expected = sim.expected_bytes(MYSQL_FULL, BIG)
    assert body == expected
    assert len(body) == 3 * 1024 * 1024 + 123
    assert headers["ETag"] == f'"{hashlib.md5(expected).hexdigest()}"'
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "binary/octet-stream"
    assert headers["x-obs-request-id"]
    parsedate_to_datetime(headers["Last-Modified"])
    assert sim.expected_sha256(MYSQL_FULL, BIG) == hashlib.sha256(expected).hexdigest()
    assert sim.stats.object_bytes_sent == len(expected)
    assert sim.stats.object_status_counts == {200: 1}


async def test_multipart_etag_is_not_md5(sim: Simulator, session: aiohttp.ClientSession) -> None:
    files = await links(session, sim, MYSQL_MULTIPART)
    (f,) = files.values()
    status, body, headers = await fetch(session, f["download_link"])
    assert status == 200
    assert re.fullmatch(r'"[0-9a-f]{32}-3"', headers["ETag"])
    assert hashlib.md5(body).hexdigest() not in headers["ETag"]


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1048576-2097151", 1048576, 2097151),
        ("bytes=3145000-", 3145000, 3145850),
        ("bytes=-100", 3145751, 3145850),
        ("bytes=3145800-99999999", 3145800, 3145850),  # end clamped
    ],
)
async def test_ranges(
    sim: Simulator, session: aiohttp.ClientSession, range_header: str, first: int, last: int
) -> None:
    files = await links(session, sim)
    status, body, headers = await fetch(
        session, files[BIG]["download_link"], {"Range": range_header}
    )
    assert status == 206
    assert headers["Content-Range"] == f"bytes {first}-{last}/3145851"
    assert body == sim.expected_bytes(MYSQL_FULL, BIG)[first : last + 1]
    assert int(headers["Content-Length"]) == last - first + 1


@pytest.mark.parametrize("range_header", ["bytes=abc", "bytes=10-5", "items=0-1", "bytes=0-1,5-6"])
async def test_invalid_range_gives_whole_object(
    sim: Simulator, session: aiohttp.ClientSession, range_header: str
) -> None:
    files = await links(session, sim)
    status, body, headers = await fetch(
        session, files[SMALL]["download_link"], {"Range": range_header}
    )
    assert status == 200
    assert "Content-Range" not in headers
    assert body == sim.expected_bytes(MYSQL_FULL, SMALL)


async def test_unsatisfiable_ranges(sim: Simulator, session: aiohttp.ClientSession) -> None:
    files = await links(session, sim)
    status, body, _ = await fetch(session, files[SMALL]["download_link"], {"Range": "bytes=777-"})
    assert status == 416
    assert xml_code(body) == "InvalidRange"
    for rng in ("bytes=0-0", "bytes=0-", "bytes=-5"):
        status, body, _ = await fetch(session, files[EMPTY]["download_link"], {"Range": rng})
        assert status == 416, rng
    status, body, headers = await fetch(session, files[EMPTY]["download_link"])
    assert (status, body, headers["Content-Length"]) == (200, b"", "0")


async def test_if_match(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[BIG]["download_link"]
    etag = sim.etag(MYSQL_FULL, BIG)
    status, _, _ = await fetch(session, link, {"Range": "bytes=0-9", "If-Match": etag})
    assert status == 206
    status, body, _ = await fetch(session, link, {"Range": "bytes=0-9", "If-Match": '"00"'})
    assert status == 412
    assert xml_code(body) == "PreconditionFailed"
    assert sim.stats.object_requests_log[-1][:4] == (BIG, "bytes=0-9", '"00"', 412)


async def test_link_must_be_sent_byte_for_byte(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    files = await links(session, sim, MYSQL_MANY)
    all_links = [f["download_link"] for f in files.values()]
    assert all("%3D" in link for link in all_links)
    assert any("%2B" in link or "%2F" in link for link in all_links)
    link = all_links[0]
    assert (await fetch(session, link))[0] == 200
    base, _, query = link.partition("?")
    for mangled in (
        link.replace("%3D", "="),
        f"{base}?{unquote(query)}",
        link.replace("Signature=", "Signature=A"),
        link.replace("Expires=", "Expires=1"),
    ):
        status, body, _ = await fetch(session, mangled)
        assert status == 403
        assert xml_code(body) == "SignatureDoesNotMatch"


async def test_head_and_forbidden_headers(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[SMALL]["download_link"]
    status, _, _ = await fetch(session, link, method="HEAD")
    assert status == 403
    for header in (
        {"Authorization": "OBS x:y"},
        {"X-Auth-Token": sim.static_token},
        {"Content-Type": "application/json"},
        {"Content-MD5": "AAAA"},
        {"x-obs-date": "now"},
    ):
        status, body, _ = await fetch(session, link, header)
        assert status == 403, header
        assert xml_code(body) == "SignatureDoesNotMatch"
    assert sim.stats.forbidden_header_requests == 5
    # Range, If-Match and User-Agent are not signed and are fine.
    headers = {"Range": "bytes=0-0", "User-Agent": "x", "If-Match": sim.etag(MYSQL_FULL, SMALL)}
    assert (await fetch(session, link, headers))[0] == 206


async def test_link_expiry(
    clock_sim: tuple[Simulator, Clock], session: aiohttp.ClientSession
) -> None:
    sim, clock = clock_sim
    link = (await links(session, sim))[SMALL]["download_link"]
    clock.t += 599
    assert (await fetch(session, link))[0] == 200
    clock.t += 2
    status, body, _ = await fetch(session, link)
    assert status == 403
    assert xml_code(body) == "AccessDenied"
    assert b"Request has expired" in body


async def test_true_lifetime_shorter_than_advertised(
    clock_sim: tuple[Simulator, Clock], session: aiohttp.ClientSession
) -> None:
    sim, clock = clock_sim
    sim.faults.link_true_lifetime = 5
    f = (await links(session, sim))[SMALL]
    advertised = datetime.strptime(f["link_expired_time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert advertised - clock.t > 590
    clock.t += 10
    status, body, _ = await fetch(session, f["download_link"])
    assert (status, xml_code(body)) == (403, "AccessDenied")


async def test_deny_objects(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[SMALL]["download_link"]
    sim.faults.deny_objects = True
    for _ in range(2):
        status, body, _ = await fetch(session, link)
        assert (status, xml_code(body)) == (403, "AccessDenied")
    sim.faults.deny_objects = False
    assert (await fetch(session, link))[0] == 200


# --- object faults -----------------------------------------------------------------------------


async def test_throttle(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[ONE_MIB]["download_link"]
    sim.faults.throttle_bps = 2_000_000
    started = time.monotonic()
    status, body, _ = await fetch(session, link)
    elapsed = time.monotonic() - started
    assert status == 200
    assert len(body) == 1024 * 1024 + 1
    assert 0.4 < elapsed < 1.5  # about 0.52 s at 2 MB/s
    sim.faults.throttle_bps = None
    started = time.monotonic()
    await fetch(session, link)
    assert time.monotonic() - started < 0.3


async def test_reset_mid_body(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[BIG]["download_link"]
    sim.faults.reset_after_bytes = 100_000
    got = 0
    with pytest.raises(aiohttp.ClientError):
        async with session.get(URL(link, encoded=True)) as resp:
            assert resp.status == 200
            async for chunk in resp.content.iter_chunked(65536):
                got += len(chunk)
    assert got <= 100_000
    assert sim.stats.resets == 1
    assert sim.faults.reset_after_bytes is None  # fired once, disarmed
    assert (await fetch(session, link))[0] == 200


async def test_truncate_mid_body(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[BIG]["download_link"]
    sim.faults.truncate_after_bytes = 5000
    sim.faults.truncate_count = 2
    for _ in range(2):
        got = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(URL(link, encoded=True), headers={"Range": "bytes=10-"}) as r:
                assert r.headers["Content-Length"] == str(3 * 1024 * 1024 + 123 - 10)
                async for chunk in r.content.iter_chunked(65536):
                    got += chunk
        assert got == sim.expected_bytes(MYSQL_FULL, BIG)[10:5010]
    assert sim.stats.truncations == 2
    assert (await fetch(session, link))[0] == 200


async def test_stall_mid_body(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[BIG]["download_link"]
    sim.faults.stall_after_bytes = 1000
    sim.faults.stall_seconds = 20
    timeout = aiohttp.ClientTimeout(sock_read=0.5)
    got = 0
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(URL(link, encoded=True), timeout=timeout) as resp:
            async for chunk in resp.content.iter_chunked(65536):
                got += len(chunk)
    assert time.monotonic() - started < 3
    assert got == 1000
    assert sim.stats.stalls == 1


async def test_error_status_with_retry_after(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    link = (await links(session, sim))[SMALL]["download_link"]
    sim.faults.error_status = 503
    sim.faults.error_count = 2
    sim.faults.retry_after = 2
    for _ in range(2):
        status, body, headers = await fetch(session, link)
        assert status == 503
        assert headers["Retry-After"] == "2"
        assert xml_code(body) == "SlowDown"
    assert (await fetch(session, link))[0] == 200
    sim.faults.retry_after = None
    sim.faults.error_status = 500
    status, body, _ = await fetch(session, link)
    assert (status, xml_code(body)) == (500, "InternalError")


async def test_fault_files_restricts_faults(sim: Simulator, session: aiohttp.ClientSession) -> None:
    files = await links(session, sim)
    sim.faults.fault_files = {ONE_MIB}
    sim.faults.error_status = 500
    assert (await fetch(session, files[SMALL]["download_link"]))[0] == 200
    assert (await fetch(session, files[ONE_MIB]["download_link"]))[0] == 500


async def test_ignore_range(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[SMALL]["download_link"]
    sim.faults.ignore_range = True
    status, body, headers = await fetch(session, link, {"Range": "bytes=10-20"})
    assert status == 200
    assert "Content-Range" not in headers
    assert len(body) == 777


async def test_change_after_bytes(sim: Simulator, session: aiohttp.ClientSession) -> None:
    link = (await links(session, sim))[BIG]["download_link"]
    old_etag = sim.etag(MYSQL_FULL, BIG)
    old = sim.expected_bytes(MYSQL_FULL, BIG)
    sim.faults.change_after_bytes = 1024 * 1024
    status, body, headers = await fetch(session, link, {"Range": "bytes=0-2097151"})
    assert status == 206
    assert headers["ETag"] == old_etag
    assert body == old[:2097152]  # the answer in flight keeps the old version
    assert sim.faults.change_after_bytes is None
    assert sim.stats.content_changes == 1
    new_etag = sim.etag(MYSQL_FULL, BIG)
    assert new_etag != old_etag
    status, _, _ = await fetch(session, link, {"Range": "bytes=2097152-", "If-Match": old_etag})
    assert status == 412
    status, body, headers = await fetch(session, link)
    assert headers["ETag"] == new_etag
    assert body == sim.expected_bytes(MYSQL_FULL, BIG) != old
    assert headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


async def test_change_content_moves_last_modified(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    link = (await links(session, sim))[SMALL]["download_link"]
    _, before, h1 = await fetch(session, link)
    sim.change_content(MYSQL_FULL, SMALL)
    _, after, h2 = await fetch(session, link)
    assert before != after
    assert h1["ETag"] != h2["ETag"]
    assert parsedate_to_datetime(h2["Last-Modified"]) > parsedate_to_datetime(h1["Last-Modified"])


async def test_parallel_requests_are_counted(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    files = await links(session, sim, MYSQL_MANY)
    sim.faults.throttle_bps = 400_000
    results = await asyncio.gather(*(fetch(session, f["download_link"]) for f in files.values()))
    assert all(status == 200 for status, _, _ in results)
    assert sim.stats.object_max_concurrent >= 5
    assert sim.stats.object_active == 0
    for (_, body, _), name in zip(results, files, strict=True):
        assert body == sim.expected_bytes(MYSQL_MANY, name)


# --- content, catalog, thread runner -----------------------------------------------------------


def test_content_is_deterministic_and_position_dependent() -> None:
    seed = b"backup/file/0"
    whole = content_bytes(seed, 0, 3 * 1024 * 1024 + 5)
    assert content_bytes(seed, 0, len(whole)) == whole
    assert content_bytes(seed, 1048570, 20) == whole[1048570:1048590]
    assert whole[: 1024 * 1024] != whole[1024 * 1024 : 2 * 1024 * 1024]
    assert whole[:100] != whole[1:101]
    assert content_bytes(b"backup/file/1", 0, 100) != whole[:100]


def test_default_catalog_rules() -> None:
    catalog = default_catalog()
    assert len({b.instance_id for b in catalog}) >= 2
    assert {b.status for b in catalog} == {"COMPLETED", "BUILDING", "FAILED"}
    assert {b.engine for b in catalog} == {"MySQL", "SQLServer", "PostgreSQL"}
    many = next(b for b in catalog if b.id == MYSQL_MANY)
    assert len(many.files) == 40
    assert all(20 * 1024 <= f.size <= 201 * 1024 and f.size % 1024 for f in many.files)
    assert default_catalog()[0].files == catalog[0].files  # stable


def test_thread_runner_serves_sync_clients(sim_thread: Simulator) -> None:
    sim = sim_thread
    path = f"/v3/{sim.project_id}/backup-files?backup_id={MYSQL_FULL}"
    request = urllib.request.Request(
        sim.endpoint + path, headers={"X-Auth-Token": sim.static_token}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
    text = sim.describe()
    assert sim.endpoint in text
    assert MYSQL_FULL in text
    assert "HUAWEICLOUD_SDK_AK" in text
    assert f"--endpoint {sim.endpoint}" in text


async def test_serve_until_cancelled(session: aiohttp.ClientSession) -> None:
    ready: asyncio.Queue[Simulator] = asyncio.Queue()
    task = asyncio.create_task(serve("127.0.0.1", 0, demo=False, on_ready=ready.put_nowait))
    sim = await asyncio.wait_for(ready.get(), 5)
    assert (await links(session, sim))[SMALL]["size"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not sim.running


def test_faults_defaults_are_off() -> None:
    f = Faults()
    assert f.throttle_bps is None
    assert f.error_status is None
    assert not f.deny_objects
    assert f.link_lifetime == 600


def test_official_sdk_signature_accepted(sim_thread: Simulator) -> None:
    """Cross-check against huaweicloudsdkcore's own signer (imported alone: no $HOME writes)."""
    signer = pytest.importorskip("huaweicloudsdkcore.signer.signer")
    sdk_request = pytest.importorskip("huaweicloudsdkcore.sdk_request")
    sim = sim_thread
    req = sdk_request.SdkRequest(
        method="GET",
        schema="http",
        host=URL(sim.endpoint).raw_authority,
        resource_path=f"/v3/{sim.project_id}/backups",
        query_params=[
            ("instance_id", MYSQL_INSTANCE),
            ("begin_time", "2024-05-19T00:00:00+0800"),
            ("end_time", "2024-05-21T00:00:00+0800"),
            ("limit", 100),
        ],
        header_params={"Content-Type": "application/json", "X-Project-Id": sim.project_id},
        body="",
    )
    signer.Signer(SimpleNamespace(ak=sim.ak, sk=sim.sk)).sign(req)
    request = urllib.request.Request(req.url, headers=req.header_params)
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "text/plain", "application/json;charset=UTF-8"]
)
def test_official_sdk_unsigned_payload_accepted(sim_thread: Simulator, content_type: str) -> None:
    """With a non-JSON Content-Type the SDK adds ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD``
    (and signs that header), yet hashes an empty body as empty: the gateway must too."""
    signer = pytest.importorskip("huaweicloudsdkcore.signer.signer")
    sdk_request = pytest.importorskip("huaweicloudsdkcore.sdk_request")
    sim = sim_thread
    req = sdk_request.SdkRequest(
        method="GET",
        schema="http",
        host=URL(sim.endpoint).raw_authority,
        resource_path=f"/v3/{sim.project_id}/backup-files",
        query_params=[("backup_id", MYSQL_FULL)],
        header_params={"Content-Type": content_type, "X-Project-Id": sim.project_id},
        body="",
    )
    signer.Signer(SimpleNamespace(ak=sim.ak, sk=sim.sk)).sign(req)
    unsigned = not content_type.startswith("application/json")
    assert (req.header_params.get("X-Sdk-Content-Sha256") == "UNSIGNED-PAYLOAD") is unsigned
    failures = sim.stats.signature_failures
    request = urllib.request.Request(req.url, headers=req.header_params)
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
        names = {f["name"] for f in json.loads(resp.read())["files"]}
    assert names == {f.name for f in sim.backups[MYSQL_FULL].files}
    assert sim.stats.signature_failures == failures
