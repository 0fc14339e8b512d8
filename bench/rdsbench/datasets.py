"""The data sets (big, tls, many, wan, stream) and their generated source files.

May import: base.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import GIB, MIB, BenchError, fmt_size

BLOCK = 4 * MIB
DATA_VERSION = 1  # bump when the generator changes, to regenerate


@dataclass(frozen=True, slots=True)
class FileSpec:
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class DataSet:
    key: str  # big / many / wan
    title: str
    files: tuple[FileSpec, ...]
    slow: bool  # served behind limit_rate
    folder: str  # under data/: full and --quick sizes live side by side
    tls: bool = False  # served over HTTPS (TLS 1.3, a certificate made at run time)

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


SET_NAMES = ("big", "tls", "many", "wan", "stream")


def make_sets(quick: bool) -> dict[str, DataSet]:
    big = 256 * MIB if quick else 2 * GIB
    n_many = 16 if quick else 64
    wan_big = 128 * MIB if quick else 512 * MIB
    n_wan = 4 if quick else 8
    sfx = "-quick" if quick else ""
    return {
        "big": DataSet(
            "big", f"one {fmt_size(big)} file", (FileSpec("big.bin", big),), False, "big" + sfx
        ),
        "many": DataSet(
            "many",
            f"{n_many} x 4 MiB files",
            tuple(FileSpec(f"part-{i:03d}.bin", 4 * MIB) for i in range(n_many)),
            False,
            "many" + sfx,
        ),
        "wan": DataSet(
            "wan",
            f"WAN-like: one {fmt_size(wan_big)} file + {n_wan} x 16 MiB",
            (
                FileSpec("wan-big.bin", wan_big),
                *(FileSpec(f"wan-{i:02d}.bin", 16 * MIB) for i in range(n_wan)),
            ),
            True,
            "wan" + sfx,
        ),
        # The big set's file over HTTPS: what object storage links are.
        "tls": DataSet(
            "tls",
            f"one {fmt_size(big)} file over HTTPS (TLS 1.3)",
            (FileSpec("big.bin", big),),
            False,
            "big" + sfx,
            tls=True,
        ),
        # The WAN-like set's big file, fetched by `download` and streamed by `cat > file`.
        "stream": DataSet(
            "stream",
            f"WAN-like: one {fmt_size(wan_big)} file, download vs cat to a file",
            (FileSpec("wan-big.bin", wan_big),),
            True,
            "wan" + sfx,
        ),
    }


class Data:
    """Generated source files under ``root/<set>/<name>`` with their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_path = root / "manifest.json"
        self.entries: dict[str, dict[str, object]] = {}
        try:
            doc = json.loads(self.manifest_path.read_text())
            if doc.get("version") == DATA_VERSION:
                self.entries = doc.get("files", {})
        except (OSError, ValueError):
            pass

    def path(self, ds: DataSet, spec: FileSpec) -> Path:
        return self.root / ds.folder / spec.name

    def sha256(self, ds: DataSet, spec: FileSpec) -> str:
        return str(self.entries[f"{ds.folder}/{spec.name}"]["sha256"])

    def ensure(self, sets: Sequence[DataSet]) -> None:
        todo = []
        for ds in sets:
            for spec in ds.files:
                if not self._fresh(ds, spec):
                    todo.append((ds, spec))
        if not todo:
            return
        need = sum(s.size for _, s in todo)
        free = shutil.disk_usage(self.root.parent if not self.root.exists() else self.root).free
        if free < need + GIB:
            raise BenchError(
                f"not enough disk space in {self.root} for the data: {fmt_size(need)} needed "
                f"(plus room for one output copy), {fmt_size(free)} free"
            )
        print(
            f"generating {len(todo)} data files, {fmt_size(need)} (once; reused later) ...",
            flush=True,
        )
        t0 = time.perf_counter()
        for ds, spec in todo:
            path = self.path(ds, spec)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            h = hashlib.sha256()
            with open(tmp, "wb") as fh:
                left = spec.size
                while left:
                    block = os.urandom(min(BLOCK, left))
                    h.update(block)
                    fh.write(block)
                    left -= len(block)
            os.replace(tmp, path)
            st = path.stat()
            self.entries[f"{ds.folder}/{spec.name}"] = {
                "size": spec.size,
                "sha256": h.hexdigest(),
                "mtime_ns": st.st_mtime_ns,
            }
            self._save()
        print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)

    def _fresh(self, ds: DataSet, spec: FileSpec) -> bool:
        e = self.entries.get(f"{ds.folder}/{spec.name}")
        if not e:
            return False
        try:
            st = self.path(ds, spec).stat()
        except OSError:
            return False
        return bool(
            st.st_size == spec.size == e.get("size") and st.st_mtime_ns == e.get("mtime_ns")
        )

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": DATA_VERSION, "files": self.entries}, indent=1))
        os.replace(tmp, self.manifest_path)
