"""A local Huawei RDS API + IAM + OBS-like object store, with injectable faults.

    sim = Simulator()                 # default_catalog(), fixed demo credentials
    await sim.start()                 # sim.endpoint == "http://127.0.0.1:<port>"
    sim.faults.reset_after_bytes = 1000
    ...
    await sim.stop()

or, from synchronous code, ``with SimulatorThread(sim) as endpoint: ...``.

May import: ``downloader.api`` (the signer it checks requests with), ``text`` and the
floor; the tool's own engine never.
"""

from downloader.sim.catalog import default_catalog, demo_catalog
from downloader.sim.content import content_bytes
from downloader.sim.faults import Faults, ObjectRequest, Stats
from downloader.sim.records import SimBackup, SimFile
from downloader.sim.server import Simulator, SimulatorThread, serve

__all__ = [
    "Faults",
    "ObjectRequest",
    "SimBackup",
    "SimFile",
    "Simulator",
    "SimulatorThread",
    "Stats",
    "content_bytes",
    "default_catalog",
    "demo_catalog",
    "serve",
]
