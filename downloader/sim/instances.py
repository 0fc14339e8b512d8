"""The simulated ListInstances (``GET /v3/{project_id}/instances``).

The catalog holds backups, not instances: each instance id that some backup names is one
instance, of that backup's engine. The answer has the documented shape (``instances[]`` with
``id``, ``name``, ``status``, ``type``, ``datastore``; ``total_count``), is paged by
``offset``/``limit`` (1 to 100, default 100), and passes the same faults, rate limit and
signature or token checks as the other RDS routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from downloader.sim.records import SimBackup
from downloader.sim.reject import ApiReject, JsonDict, int_param

if TYPE_CHECKING:
    from downloader.sim.api import ApiHandlers

__all__ = ["InstancesRoute", "catalog_instances"]


def catalog_instances(
    backups: list[SimBackup], statuses: Mapping[str, str] | None = None
) -> list[JsonDict]:
    """One ListInstances entry per instance the backups name, ordered by id (stable pages).

    ``statuses`` overrides an instance's ``status`` (``ACTIVE`` otherwise); an id there that
    no backup names is an instance without backups yet (a MySQL one)."""
    statuses = statuses or {}
    engines: dict[str, tuple[str, str]] = {}
    for backup in backups:
        engines.setdefault(backup.instance_id, (backup.engine, backup.engine_version))
    for instance_id in statuses:
        engines.setdefault(instance_id, ("MySQL", "8.0"))
    return [
        {
            "id": instance_id,
            "name": f"sim-{engine.lower()}-{instance_id[:8]}",
            "status": statuses.get(instance_id, "ACTIVE"),
            "type": "Ha",
            "datastore": {"type": engine, "version": version},
            "port": {"MySQL": 3306, "PostgreSQL": 5432}.get(engine, 1433),
            "private_ips": ["192.168.0.10"],
            "created": "2024-01-02T03:04:05+0000",
        }
        for instance_id, (engine, version) in sorted(engines.items())
    ]


class InstancesRoute:
    """The handler; ``api`` supplies the shared guard (faults, rate limit, auth, project)."""

    def __init__(self, api: ApiHandlers) -> None:
        self.api = api

    async def handle(self, request: web.Request) -> web.Response:
        sim = self.api.sim
        sim.stats.api_calls += 1
        sim.stats.instances_list_calls += 1
        try:
            await self.api._guard(request)
            offset = int_param(request.query.get("offset"), "offset", 0, 0, None)
            limit = int_param(request.query.get("limit"), "limit", 100, 1, 100)
        except ApiReject as reject:
            return self.api._error(reject)
        everything = catalog_instances(list(sim.store.backups.values()), sim.instance_status)
        return self.api._respond(
            200,
            {"instances": everything[offset : offset + limit], "total_count": len(everything)},
        )
