"""The simulated RDS v3 API (ListBackups, ShowBackupDownloadLink; ListInstances in
``instances.py``) and IAM token endpoint.

Auth is checked the way Huawei's API gateway does it (facts §3, §4): an ``SDK-HMAC-SHA256``
signature recomputed from the request as received, ``X-Sdk-Date`` within 15 minutes, more than
five consecutive signature failures lock the AK for five minutes; or an ``X-Auth-Token``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

from aiohttp import web

from downloader.api.signer import (
    ALGORITHM,
    DATE_FORMAT,
    canonical_query,
    canonical_uri,
    parse_authorization,
    payload_hash,
)
from downloader.sim._http import http_date, obs_key, obs_signature, request_id, utc_string
from downloader.sim.instances import InstancesRoute
from downloader.sim.records import SimBackup
from downloader.sim.reject import ApiReject, JsonDict, int_param

if TYPE_CHECKING:
    from downloader.sim.server import Simulator

SKEW_LIMIT = 15 * 60.0  # APIG rejects an X-Sdk-Date further than this from its clock
LOCK_AFTER_FAILURES = 5  # "more than 5 consecutive failures" locks the AK ...
LOCK_SECONDS = 300.0  # ... for five minutes
LIST_TIME_TZ = timezone(timedelta(hours=8))  # ListBackups shows times like ...+0800
BACKUP_TYPES = {"auto", "manual", "fragment", "incremental"}
BACKUP_STATUSES = {"BUILDING", "COMPLETED", "FAILED", "DELETING"}
AUTH_PREFIX = "Incorrect IAM authentication information: "


@dataclass(slots=True)
class _Lock:
    failures: int = 0
    locked_until: float = 0.0


class ApiHandlers:
    """aiohttp handlers for the RDS and IAM endpoints of one :class:`Simulator`."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._locks: dict[str, _Lock] = {}
        self._tokens: dict[str, float] = {}  # IAM-issued token -> expiry (server clock)
        self._window: deque[float] = deque()  # times of accepted calls in the last minute

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/v3/auth/tokens", self.iam_tokens)
        app.router.add_route("GET", "/v3/{project_id}/backup-files", self.backup_files)
        app.router.add_route("GET", "/v3/{project_id}/backups", self.list_backups)
        app.router.add_route("GET", "/v3/{project_id}/instances", InstancesRoute(self).handle)

    # --- plumbing ---------------------------------------------------------------------------

    def _respond(
        self,
        status: int,
        body: JsonDict,
        headers: dict[str, str] | None = None,
        *,
        count: bool = True,
    ) -> web.Response:
        rid = request_id()
        if status >= 400 and "error_code" in body:
            body = {**body, "request_id": rid}
        out = {"X-Request-Id": rid, "Date": http_date(self.sim.now())}
        out.update(headers or {})
        if count:
            counts = self.sim.stats.api_status_counts
            counts[status] = counts.get(status, 0) + 1
            if status == 401:
                self.sim.stats.auth_failures += 1
        raw = self.sim.faults.api_body
        return web.Response(
            status=status,
            body=json.dumps(body).encode() if raw is None else raw,
            content_type="application/json",
            charset="utf-8",
            headers=out,
        )

    def _error(self, reject: ApiReject) -> web.Response:
        return self._respond(
            reject.status, {"error_code": reject.code, "error_msg": reject.msg}, reject.headers
        )

    async def _guard(self, request: web.Request) -> None:
        """Everything before the handler proper: faults, rate limit, auth, project."""
        faults = self.sim.faults
        if faults.api_error_status is not None and faults.api_error_count != 0:
            status = faults.api_error_status
            if faults.api_error_count > 0:
                faults.api_error_count -= 1
                if faults.api_error_count == 0:
                    faults.api_error_status, faults.api_error_count = None, 1
            headers = {}
            if faults.api_retry_after is not None:
                headers["Retry-After"] = _seconds(faults.api_retry_after)
            code = "APIG.0308" if status == 429 else "DBS.108000"
            msg = (
                "The throttling threshold has been reached: policy user over ratelimit"
                if status == 429
                else "Internal server error (injected)."
            )
            raise ApiReject(status, code, msg, headers)
        self._rate_limit()
        await self._authenticate(request)
        if request.match_info["project_id"] != self.sim.project_id:
            raise ApiReject(403, "DBS.200010", "The project ID is invalid or not authorized.")

    def _rate_limit(self) -> None:
        limit = self.sim.faults.api_rate_per_minute
        now = self.sim.now()
        while self._window and self._window[0] <= now - 60.0:
            self._window.popleft()
        if limit is not None and len(self._window) >= limit:
            self.sim.stats.api_rate_limited += 1
            wait = max(1.0, self._window[0] + 60.0 - now)
            raise ApiReject(
                429,
                "APIG.0308",
                "The throttling threshold has been reached: "
                f"policy user over ratelimit,limit:{limit},time:1 minute",
                {"Retry-After": _seconds(wait)},
            )
        self._window.append(now)

    async def _authenticate(self, request: web.Request) -> None:
        token = request.headers.get("X-Auth-Token")
        if token is not None:
            self._check_token(token)
            return
        header = request.headers.get("Authorization")
        if header is None:
            raise ApiReject(401, "APIG.0301", AUTH_PREFIX + "x-auth-token not found")
        await self._check_signature(request, header)

    def _check_token(self, token: str) -> None:
        if token == self.sim.static_token:
            return
        expires = self._tokens.get(token)
        if expires is None:
            raise ApiReject(401, "APIG.0301", AUTH_PREFIX + "decrypt token fail")
        if self.sim.now() >= expires:
            raise ApiReject(
                401,
                "APIG.0301",
                AUTH_PREFIX + f"token expires, expires_at: {_iam_time(expires)}",
            )

    async def _check_signature(self, request: web.Request, header: str) -> None:
        sim = self.sim
        now = sim.now()
        parsed = parse_authorization(header)
        ak = parsed[0] if parsed is not None else ""
        lock = self._locks.setdefault(ak, _Lock())
        if lock.locked_until > now:
            sim.stats.ak_locked_responses += 1
            raise ApiReject(
                401, "APIG.0301", AUTH_PREFIX + "AK access failed to reach the limit,forbidden"
            )
        problem = await self._signature_problem(request, parsed, now)
        if problem is None:
            lock.failures = 0
            return
        sim.stats.signature_failures += 1
        lock.failures += 1
        if lock.failures > LOCK_AFTER_FAILURES:
            lock.failures = 0
            lock.locked_until = now + LOCK_SECONDS
            sim.stats.ak_locked_responses += 1
            problem = "AK access failed to reach the limit,forbidden"
        raise ApiReject(401, "APIG.0301", AUTH_PREFIX + problem)

    async def _signature_problem(
        self, request: web.Request, parsed: tuple[str, list[str], str] | None, now: float
    ) -> str | None:
        bad = "verify aksk signature fail"
        if parsed is None:
            return bad
        ak, names, signature = parsed
        values: dict[str, str] = {}
        for name in names:
            value = request.headers.get(name)
            if value is None:
                return bad
            values[name] = value.strip()
        date = values.get("x-sdk-date")
        if date is None:
            return bad
        try:
            signed_at = datetime.strptime(date, DATE_FORMAT).replace(tzinfo=UTC).timestamp()
        except ValueError:
            return bad
        if abs(signed_at - now) > SKEW_LIMIT:
            return "signature expired"
        if ak != self.sim.ak:
            return bad
        token = self.sim.security_token
        if token is not None and values.get("x-security-token") != token:
            return bad
        body = await request.read()
        raw_target = request.raw_path
        raw_path, _, raw_query = raw_target.partition("?")
        query = parse_qsl(raw_query, keep_blank_values=True)
        # As the SDK signs: an empty body hashes as empty even beside UNSIGNED-PAYLOAD.
        payload = payload_hash(body, request.headers)
        canonical = "\n".join(
            [
                request.method.upper(),
                canonical_uri(raw_path),
                canonical_query(query),
                "".join(f"{n}:{values[n]}\n" for n in names),
                ";".join(names),
                payload,
            ]
        )
        to_sign = "\n".join([ALGORITHM, date, hashlib.sha256(canonical.encode()).hexdigest()])
        expected = hmac.new(self.sim.sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return bad
        return None

    # --- RDS --------------------------------------------------------------------------------

    async def backup_files(self, request: web.Request) -> web.Response:
        sim = self.sim
        sim.stats.api_calls += 1
        sim.stats.backup_files_calls += 1
        try:
            await self._guard(request)
            backup_id = request.query.get("backup_id")
            if not backup_id:
                raise ApiReject(400, "DBS.200001", "Parameter error: backup_id is required.")
            backup = sim.store.backups.get(backup_id)
            if backup is None:
                raise ApiReject(404, "DBS.201010", "The backup information does not exist.")
            if backup.status == "BUILDING":
                raise ApiReject(409, "DBS.201205", "Backup is in progress.")
            if backup.status != "COMPLETED":
                raise ApiReject(400, "DBS.201203", "The backup file does not exist.")
        except ApiReject as reject:
            return self._error(reject)
        netloc = self.sim.faults.link_netloc or request.host
        return self._respond(200, self._files_body(backup, f"{request.scheme}://{netloc}"))

    def _files_body(self, backup: SimBackup, base: str) -> JsonDict:
        sim = self.sim
        faults = sim.faults
        now = sim.now()
        advertised = now + faults.link_lifetime
        true_life = faults.link_true_lifetime
        expires = str(int(now + (true_life if true_life is not None else faults.link_lifetime)))
        files = []
        for f in backup.files:
            if f.name in faults.hidden_files:
                continue
            key = obs_key(backup.id, f.name)
            signature = obs_signature(sim.obs_sk, "GET", expires, sim.bucket, key)
            link = (
                f"{base}/obs/{quote(sim.bucket, safe='')}/{quote(key, safe='/')}"
                f"?AccessKeyId={sim.obs_ak}&Expires={expires}&Signature={signature}"
            )
            expiry_text = (
                faults.expiry_override
                if faults.expiry_override is not None
                else utc_string(advertised)
            )
            files.append(
                {
                    "name": f.name,
                    "size": max(0, f.size_kb + faults.wrong_kb_size),
                    "download_link": link,
                    "link_expired_time": expiry_text,
                    "database_name": f.database_name or "",
                }
            )
            sim.stats.links_issued += 1
        return {"files": files, "bucket": sim.bucket}

    async def list_backups(self, request: web.Request) -> web.Response:
        sim = self.sim
        sim.stats.api_calls += 1
        sim.stats.backups_list_calls += 1
        try:
            await self._guard(request)
            backups, total = self._select(request)
        except ApiReject as reject:
            return self._error(reject)
        return self._respond(
            200, {"backups": [self._backup_json(b) for b in backups], "total_count": total}
        )

    def _select(self, request: web.Request) -> tuple[list[SimBackup], int]:
        q = request.query
        instance_id = q.get("instance_id")
        if not instance_id:
            raise ApiReject(400, "DBS.200001", "Parameter error: instance_id is required.")
        all_backups = [b for b in self.sim.store.backups.values() if b.instance_id == instance_id]
        if not all_backups and instance_id not in self.sim.instance_status:
            raise ApiReject(404, "DBS.200002", "The DB instance does not exist.")
        offset = int_param(q.get("offset"), "offset", 0, 0, None)
        limit = int_param(q.get("limit"), "limit", 100, 1, 100)
        backup_type = q.get("backup_type")
        if backup_type is not None and backup_type not in BACKUP_TYPES:
            raise ApiReject(400, "DBS.200001", "Parameter error: backup_type is invalid.")
        status = q.get("status")
        if status is not None and status not in BACKUP_STATUSES:
            raise ApiReject(400, "DBS.200001", "Parameter error: status is invalid.")
        begin_s, end_s = q.get("begin_time"), q.get("end_time")
        if (begin_s is None) != (end_s is None):
            raise ApiReject(
                400, "DBS.200001", "Parameter error: begin_time and end_time go together."
            )
        window: tuple[datetime, datetime] | None = None
        if begin_s is not None and end_s is not None:
            try:
                window = (_parse_time(begin_s), _parse_time(end_s))
            except ValueError:
                raise ApiReject(
                    400, "DBS.200001", "Parameter error: invalid begin_time or end_time."
                ) from None
            if window[1] <= window[0]:
                raise ApiReject(
                    400, "DBS.200001", "Parameter error: end_time must be later than begin_time."
                )
        backup_id = q.get("backup_id")

        def keep(b: SimBackup) -> bool:
            if backup_id is not None and b.id != backup_id:
                return False
            if backup_type is not None and b.type != backup_type:
                return False
            # The real API honours the status filter only for SQL Server (facts §2).
            if status is not None and b.engine == "SQLServer" and b.status != status:
                return False
            return window is None or window[0] <= b.begin_time <= window[1]

        chosen = sorted(filter(keep, all_backups), key=lambda b: b.begin_time, reverse=True)
        faults = self.sim.faults
        if faults.list_ignores_offset:
            offset = 0
        claimed = faults.list_claims_total
        return chosen[offset : offset + limit], len(chosen) if claimed is None else claimed

    def _backup_json(self, b: SimBackup) -> JsonDict:
        out: JsonDict = {
            "id": b.id,
            "instance_id": b.instance_id,
            "name": b.name,
            "type": b.type,
            "size": max(0, b.size_kb + self.sim.faults.wrong_kb_size),
            "status": b.status,
            "begin_time": _list_time(b.begin_time),
            "end_time": _list_time(b.end_time),
            "datastore": {"type": b.engine, "version": b.engine_version},
            "associated_with_ddm": False,
            "min_data_volume_capacity_for_restore": max(40, math.ceil(b.size / 1024**3) * 2),
        }
        if b.databases:
            out["databases"] = [{"name": d} for d in b.databases]
        return out

    # --- IAM --------------------------------------------------------------------------------

    async def iam_tokens(self, request: web.Request) -> web.Response:
        sim = self.sim
        sim.stats.iam_calls += 1
        try:
            body = json.loads(await request.read())
            auth = body["auth"]
            identity = auth["identity"]
            user = identity["password"]["user"]
            if "password" not in identity["methods"]:
                raise KeyError("methods")
            name, password = str(user["name"]), str(user["password"])
            domain = str(user["domain"]["name"])
            scope = auth.get("scope", {}).get("project", {})
        except (ValueError, KeyError, TypeError, AttributeError):
            return self._respond(
                400,
                {"error_code": "IAM.0001", "error_msg": "The request body is invalid."},
                count=False,
            )
        if (name, password, domain) != (sim.iam_user, sim.iam_password, sim.iam_domain):
            message = "The username or password is wrong."
            if sim.faults.iam_echo:
                # As some gateways do: the request, as JSON, inside the message string.
                message += " Request: " + json.dumps(body)
            return self._respond(401, {"error_code": "IAM.0011", "error_msg": message}, count=False)
        # IAM names a region's project after the region id, case and all: a token scoped to
        # "AP-SOUTHEAST-1" is refused as an unknown project.
        if ("id" in scope and scope["id"] != sim.project_id) or (
            "name" in scope and scope["name"] != sim.region
        ):
            return self._respond(
                400,
                {"error_code": "IAM.0004", "error_msg": "The project does not exist."},
                count=False,
            )
        now = sim.now()
        expires = now + sim.faults.token_lifetime
        token = "MIIsim" + secrets.token_urlsafe(600)
        self._tokens[token] = expires
        payload = {
            "token": {
                "expires_at": _iam_time(expires),
                "issued_at": _iam_time(now),
                "methods": ["password"],
                "project": {
                    "id": sim.project_id,
                    "name": str(scope.get("name", sim.region)),
                    "domain": {"id": sim.domain_id, "name": sim.iam_domain},
                },
                "user": {
                    "id": sim.user_id,
                    "name": sim.iam_user,
                    "domain": {"id": sim.domain_id, "name": sim.iam_domain},
                },
                "roles": [{"id": "0", "name": "op_service"}],
                "catalog": [],
            }
        }
        return self._respond(201, payload, {"X-Subject-Token": token}, count=False)

    async def not_found(self, request: web.Request) -> web.Response:
        return self._respond(
            404,
            {
                "error_code": "APIGW.0101",
                "error_msg": "The API does not exist or has not been published in the environment.",
            },
            count=False,
        )


def _seconds(value: float) -> str:
    return str(max(0, math.ceil(value)))


def _iam_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _list_time(dt: datetime) -> str:
    return dt.astimezone(LIST_TIME_TZ).strftime("%Y-%m-%dT%H:%M:%S%z")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
