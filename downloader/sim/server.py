"""The :class:`Simulator`: RDS API, IAM and object store on one loopback aiohttp server."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

from aiohttp import web

from downloader.sim._http import http_date
from downloader.sim.api import ApiHandlers
from downloader.sim.catalog import ContentStore, default_catalog, demo_catalog
from downloader.sim.faults import Faults, Stats
from downloader.sim.objects import ObjectHandler
from downloader.sim.records import SimBackup
from downloader.text.fmt import format_size

DEFAULT_AK = "SIMAK0BAA31C30847970"
DEFAULT_SK = "SIMSKsimulatorSecretKey0baa31c30847970766a4"  # a public demo value
DEFAULT_PROJECT_ID = "5fc2f26720150ddf3c9382bb269966fa"
DEFAULT_REGION = "sim-region-1"
DEFAULT_BUCKET = "rdsbucket.sim.1"
OBS_AK = "SIMOBSAK7A2C4E6F8B0D"
OBS_SK = "SIMOBSSKbackupBucketSigningKey00000000"


class Simulator:
    """A local Huawei RDS API + IAM + OBS-like object store.

    ``faults`` and ``stats`` are plain mutable objects: change ``faults`` fields at any time,
    read ``stats`` counters after requests. ``clock`` is the server's clock (seconds since the
    epoch) before ``faults.server_clock_offset`` is added.
    """

    def __init__(
        self,
        ak: str = DEFAULT_AK,
        sk: str = DEFAULT_SK,
        project_id: str = DEFAULT_PROJECT_ID,
        catalog: Iterable[SimBackup] | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        *,
        security_token: str | None = None,
        region: str = DEFAULT_REGION,
        bucket: str = DEFAULT_BUCKET,
    ) -> None:
        self.ak = ak
        self.sk = sk
        self.project_id = project_id
        self.security_token = security_token
        self.region = region
        self.bucket = bucket
        self.obs_ak = OBS_AK
        self.obs_sk = OBS_SK
        self.iam_user = "sim-user"
        self.iam_password = "sim-password"  # noqa: S105 - a public demo value
        self.iam_domain = "sim-account"
        self.domain_id = "d0c0ffee0000000000000000000000d1"
        self.user_id = "a0c0ffee0000000000000000000000a1"
        self.static_token = "MIIsimSTATICtoken-" + project_id
        self.clock = clock
        self.faults = faults if faults is not None else Faults()
        self.stats = Stats()
        self.store = ContentStore(default_catalog() if catalog is None else catalog)
        # Instance id -> status in ListInstances (ACTIVE otherwise); an id no backup names is
        # an instance with no backup yet (its backups list is empty).
        self.instance_status: dict[str, str] = {}
        self._api = ApiHandlers(self)
        self._objects = ObjectHandler(self)
        self._runner: web.AppRunner | None = None
        self._endpoint: str | None = None

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the running server."""
        if self._endpoint is None:
            raise RuntimeError("the simulator is not running; await start() first")
        return self._endpoint

    @property
    def running(self) -> bool:
        return self._runner is not None

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        self._objects.add_routes(app)
        self._api.add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._api.not_found)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Listen on ``host:port`` (0 picks a free port); returns :attr:`endpoint`.

        With ``ssl_context`` it speaks HTTPS, and the links it hands out are https too.
        """
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_port = _bound_port(runner, port)
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        if ":" in shown:
            shown = "[::1]" if shown == "::" else f"[{shown}]"
        self._runner = runner
        scheme = "https" if ssl_context is not None else "http"
        self._endpoint = f"{scheme}://{shown}:{bound_port}"
        return self._endpoint

    async def stop(self) -> None:
        """Stop listening and drop open connections; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- clock and content ------------------------------------------------------------------

    def now(self) -> float:
        """The server's clock: ``clock()`` plus ``faults.server_clock_offset``."""
        return self.clock() + self.faults.server_clock_offset

    @property
    def backups(self) -> dict[str, SimBackup]:
        return self.store.backups

    def expected_bytes(self, backup_id: str, name: str) -> bytes:
        """The current content of that file (materialised; mind the size of big files)."""
        return self.store.read(backup_id, name)

    def expected_sha256(self, backup_id: str, name: str) -> str:
        """Hex SHA-256 of the current content, computed streaming and cached per version."""
        return self.store.digests(backup_id, name).sha256

    def expected_crc64(self, backup_id: str, name: str) -> int:
        """CRC-64/XZ of the current content (what ``x-obs-checksum-crc64ecma`` reports)."""
        return self.store.digests(backup_id, name).crc64

    def expected_md5(self, backup_id: str, name: str) -> str:
        """Hex MD5 of the current content (equals the ETag unless the file is multipart)."""
        return self.store.digests(backup_id, name).md5

    def etag(self, backup_id: str, name: str) -> str:
        """The quoted ETag the object store currently shows for that file."""
        return self.store.etag(backup_id, name)

    def change_content(self, backup_id: str, name: str) -> None:
        """Replace the file's content: new bytes, ETag and Last-Modified from now on."""
        self.store.bump(backup_id, name, self.now())
        self.stats.content_changes += 1

    def env(self) -> dict[str, str]:
        """Environment variables that point the official SDK chain at these credentials."""
        out = {
            "HUAWEICLOUD_SDK_AK": self.ak,
            "HUAWEICLOUD_SDK_SK": self.sk,
            "HUAWEICLOUD_SDK_PROJECT_ID": self.project_id,
        }
        if self.security_token is not None:
            out["HUAWEICLOUD_SDK_SECURITY_TOKEN"] = self.security_token
        return out

    def describe(self) -> str:
        """Human-readable summary: endpoint, credentials to export, backups, an example."""
        endpoint = self._endpoint or "(not started)"
        lines = [
            "rds-backup simulator (Huawei RDS API + IAM + OBS, local and fake)",
            f"  endpoint:   {endpoint}",
            f"  project id: {self.project_id}",
            f"  server time: {http_date(self.now())}",
            "",
            "Credentials (public demo values):",
        ]
        lines += [f"  export {k}={v}" for k, v in self.env().items()]
        lines += [
            f"  IAM user {self.iam_user!r} / password {self.iam_password!r} / "
            f"account {self.iam_domain!r}",
            "",
            "Backups:",
        ]
        by_instance: dict[str, list[SimBackup]] = {}
        for b in self.store.backups.values():
            by_instance.setdefault(b.instance_id, []).append(b)
        example: SimBackup | None = None
        for instance, backups in by_instance.items():
            lines.append(f"  instance {instance}")
            for i, b in enumerate(sorted(backups, key=lambda x: x.begin_time, reverse=True)):
                if i < 12:  # a chain's hundreds of backups: the newest, then a count
                    lines.append(
                        f"    {b.id}  {b.engine} {b.engine_version}  {b.type:<11} {b.status:<9} "
                        f"{len(b.files):>3} files  {format_size(b.size)}"
                    )
                if b.status == "COMPLETED" and (example is None or b.size > example.size):
                    example = b
            if len(backups) > 12:
                lines.append(
                    f"    ... and {len(backups) - 12} older: rds-backup backups --instance-id "
                    f"{instance}"
                )
        if example is not None:
            lines += [
                "",
                "Try:",
                f"  rds-backup download {example.id} -o ./out --endpoint {endpoint}",
            ]
        return "\n".join(lines)


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


class SimulatorThread:
    """Run a :class:`Simulator` on its own event loop in a background thread.

    ``with SimulatorThread(sim) as endpoint:`` starts it and stops it on exit; for sync tests
    and for tests that run the CLI as a subprocess.
    """

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="rds-sim", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self.sim.endpoint

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.sim.start(self.host, self.port))
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.sim.stop())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the simulator's loop and wait for it (for thread-sensitive changes)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("not running")
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        done.wait()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


async def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    sim: Simulator | None = None,
    demo: bool = True,
    on_ready: Callable[[Simulator], None] | None = None,
) -> None:
    """Serve until cancelled (``rds-backup simulate``). Uses the demo catalog by default."""
    if sim is None:
        sim = Simulator(catalog=demo_catalog() if demo else None)
    await sim.start(host, port)
    try:
        if on_ready is not None:
            on_ready(sim)
        await asyncio.Event().wait()
    finally:
        await sim.stop()
