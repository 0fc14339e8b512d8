#!/usr/bin/env python3
"""Benchmark rds-backup against aria2c and curl on data served by a local nginx.

Not a test: it measures. One command from a fresh clone (with the package installed)::

    python bench/run.py                 # full run: 2 GiB, 64 x 4 MiB, WAN-like 512 MiB + 8 x 16 MiB
    python bench/run.py --quick         # small sizes, under two minutes
    python bench/run.py --sets big --rounds 5
    python bench/run.py --wan-rate 4m   # per-connection cap of the WAN-like set
    python bench/run.py --install       # apt-get install nginx-light aria2 curl first

What it does:

* generates the data once into ``<workdir>/data`` (random bytes from ``os.urandom``, so
  nothing compresses or deduplicates) and records sizes and SHA-256 in
  ``<workdir>/data/manifest.json``; later runs reuse the files;
* writes ``<workdir>/nginx.conf`` and runs nginx in the foreground as a child
  (``daemon off``, ``sendfile on``, logs, pid and temp files in the workdir), listening on a
  free loopback port: ``/...`` unlimited, ``/slow/...`` the same files behind a
  per-connection ``limit_rate`` (how object storage behaves across a real network);
  nginx is stopped at the end, also on Ctrl-C or an error;
* for every data set and round, runs each tool into a fresh empty folder, rotating the
  order each round; measures wall time, CPU seconds (user + sys) and peak RSS of that
  child (``os.wait4``), counts requests and connections in nginx's access log, then checks
  every output file's size and SHA-256 (a mismatch marks the run FAILED) and deletes it;
* prints a table per set (median of the verified rounds for time, throughput and CPU;
  highest peak RSS of any round), the ratios, and pass/fail against the targets.

Notes on what is and is not measured:

* the page cache is not dropped (that needs root and would measure the disk, not the
  downloader): source files are served from memory when they fit, as after the first read;
* ``os.sync()`` runs between runs (not timed), so one tool's dirty pages are not written
  back during the next tool's run; rds-backup fsyncs its part files for its journal on its
  own time, aria2c and curl do not fsync at all;
* the wall time of rds-backup includes starting Python and importing aiohttp (~0.2-0.4 s);
* nginx shares the two cores with the client, as a local object store would.

Standard library only, plus the installed ``rds-backup``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
BLOCK = 4 * MIB
DATA_VERSION = 1  # bump when the generator changes, to regenerate
APT_PACKAGES = {"nginx": "nginx-light", "aria2c": "aria2", "curl": "curl"}
RUN_TIMEOUT = 30 * 60.0

HERE = Path(__file__).resolve().parent


class BenchError(Exception):
    """A problem to report in one line, without a traceback."""


class Terminated(Exception):
    """SIGTERM arrived: unwind (stopping nginx and the running tool) and exit 143."""


# --------------------------------------------------------------------------- data sets


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


def fmt_size(n: float) -> str:
    for unit, div in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= div:
            v = n / div
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.2f} {unit}"
    return f"{n:.0f} B"


def parse_rate(text: str) -> int:
    """``8m`` -> 8 MiB/s in bytes (nginx reads k/m the same way, 1024-based)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (say e.g. 8m, 512k)")
    n = int(m.group(1)) * {"": 1, "k": KIB, "m": MIB, "g": GIB}[m.group(2).lower()]
    if n <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return n


# --------------------------------------------------------------------------- data files


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


# --------------------------------------------------------------------------- nginx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_without(nginx: str) -> set[str]:
    """Modules compiled out of this nginx (their temp-path directives would not parse)."""
    try:
        out = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(re.findall(r"--without-http_(\w+?)_module", out))


NGINX_CONF = """\
# Generated by bench/run.py; rewritten on every run.
daemon off;
master_process on;
worker_processes {workers};
{user}pid {wd}/nginx.pid;
error_log {wd}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    default_type application/octet-stream;
    log_format bench '$connection $status $body_bytes_sent $request_length "$request"';
    access_log {wd}/nginx-access.log bench;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    etag on;
    gzip off;
{temp_paths}
    server {{
        listen 127.0.0.1:{port} reuseport;
        server_name localhost;
        root {data};
        location / {{
        }}
        # The WAN-like location: the same files, each connection capped.
        location /slow/ {{
            alias {data}/;
            limit_rate {rate};
        }}
    }}
    # The same files over TLS 1.3, with a certificate made for this run.
    server {{
        listen 127.0.0.1:{tls_port} ssl reuseport;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:bench:1m;
        root {data};
        location / {{
        }}
    }}
}}
"""


def make_certificate(ca_path: Path) -> tuple[Path, Path]:
    """A CA (written to ``ca_path``) and a server certificate for 127.0.0.1 signed by it;
    returns the server's certificate chain and key files. Made fresh on every run."""
    try:
        import trustme
    except ImportError as exc:
        raise BenchError(
            "the tls set needs trustme to make its certificate: pip install trustme "
            "(it is in rds-backup's test extra)"
        ) from exc
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    folder = ca_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(ca_path))
    cert, key = folder / "server.pem", folder / "server.key"
    leaf.private_key_pem.write_to_path(str(key))
    with open(cert, "wb") as fh:
        for blob in leaf.cert_chain_pems:
            fh.write(blob.bytes())
    return cert, key


class Nginx:
    def __init__(self, binary: str, workdir: Path, data_root: Path, rate: int) -> None:
        self.binary = binary
        self.wd = workdir
        self.data_root = data_root
        self.rate = rate
        self.port = 0
        self.tls_port = 0
        self.ca = workdir / "tls" / "ca.pem"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "nginx.conf"
        self.access_log = workdir / "nginx-access.log"
        self.error_log = workdir / "nginx-error.log"

    def write_config(self) -> None:
        without = nginx_without(self.binary)
        temp = ["client_body"] + [
            m for m in ("proxy", "fastcgi", "uwsgi", "scgi") if m not in without
        ]
        tmp_root = self.wd / "nginx-tmp"
        lines = []
        for name in temp:
            (tmp_root / name).mkdir(parents=True, exist_ok=True)
            lines.append(f"    {name}_temp_path {tmp_root / name};")
        # As root, workers would switch to "nobody", who may not read the workdir.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.port = free_port()
        self.tls_port = free_port()
        cert, key = make_certificate(self.ca)
        self.conf.write_text(
            NGINX_CONF.format(
                workers=min(2, os.cpu_count() or 1),
                user=user,
                wd=self.wd,
                temp_paths="\n".join(lines) + "\n",
                port=self.port,
                tls_port=self.tls_port,
                cert=cert,
                key=key,
                data=self.data_root,
                rate=self.rate,
            )
        )

    def url(self, ds: DataSet, spec: FileSpec) -> str:
        if ds.tls:
            return f"https://127.0.0.1:{self.tls_port}/{ds.folder}/{spec.name}"
        prefix = "/slow" if ds.slow else ""
        return f"http://127.0.0.1:{self.port}{prefix}/{ds.folder}/{spec.name}"

    def fast_url(self, ds: DataSet, spec: FileSpec) -> str:
        return f"http://127.0.0.1:{self.port}/{ds.folder}/{spec.name}"

    def start(self, probe: str) -> None:
        for attempt in range(3):
            self.write_config()
            self.access_log.unlink(missing_ok=True)
            errlog = open(self.wd / "nginx-stderr.log", "wb")
            try:
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        "-p",
                        str(self.wd),
                        "-c",
                        str(self.conf),
                        "-e",
                        str(self.error_log),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=errlog,
                    stderr=errlog,
                    start_new_session=True,  # Ctrl-C reaches us, and we stop nginx
                )
            finally:
                errlog.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    probe_url = f"http://127.0.0.1:{self.port}{probe}"
                    req = urllib.request.Request(probe_url, method="HEAD")
                    with urllib.request.urlopen(req, timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    time.sleep(0.05)
            why = self._tail()
            self.stop()
            if "Address already in use" in why and attempt < 2:
                continue  # the free port was taken in between: pick another
            raise BenchError(f"nginx did not start (config {self.conf}):\n{why}")

    def _tail(self) -> str:
        text = ""
        for p in (self.wd / "nginx-stderr.log", self.error_log):
            try:
                text += p.read_text(errors="replace")[-2000:]
            except OSError:
                pass
        return text.strip() or "(no output)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # fast shutdown of master and workers
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_offset(self) -> int:
        try:
            return self.access_log.stat().st_size
        except OSError:
            return 0

    def requests_since(self, offset: int) -> tuple[int, int, int]:
        """(requests, distinct connections, body bytes sent) logged after ``offset``."""
        try:
            with open(self.access_log, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            return 0, 0, 0
        reqs = 0
        conns = set()
        sent = 0
        for line in text.splitlines():
            parts = line.split(" ", 3)
            if len(parts) < 3 or not parts[2].isdigit():
                continue
            reqs += 1
            conns.add(parts[0])
            sent += int(parts[2])
        return reqs, len(conns), sent


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class Tool:
    key: str  # rds-backup / aria2c / curl / rds-backup*
    label: str  # as printed, with the flags that matter


@dataclass(slots=True)
class RunResult:
    tool: str
    round: int
    wall: float
    cpu: float
    rss_kb: int
    exit_code: int
    verified: bool
    detail: str = ""
    reqs: int = 0
    conns: int = 0
    sent: int = 0


@dataclass(slots=True)
class Env:
    args: argparse.Namespace
    workdir: Path
    data: Data
    nginx: Nginx
    rds: list[str]
    aria2c: str
    curl: str
    failures: list[str] = field(default_factory=list)
    baseline: list[str] | None = None  # another rds-backup build, same flags


COMMON_ARIA2 = [
    "--file-allocation=none",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--allow-overwrite=true",
    "--auto-file-renaming=false",
    "--download-result=hide",
]
ARIA2_SET_FLAGS = {
    "big": ["-x16", "-s16", "-k1M"],
    "tls": ["-x16", "-s16", "-k1M"],
    "many": ["-j8"],
    "wan": ["-x16", "-s16", "-j4"],
}


def tools_for(env: Env, ds: DataSet) -> list[Tool]:
    a = " ".join(ARIA2_SET_FLAGS[ds.key])
    curl = {
        "big": "curl",
        "tls": "curl",
        "many": "curl --parallel --parallel-max 8",
        "wan": f"curl --parallel ({len(ds.files)} at once)",
    }[ds.key]
    tools = [
        Tool("rds-backup", "rds-backup (defaults)"),
        Tool("aria2c", f"aria2c {a}"),
        Tool("curl", curl),
    ]
    if env.args.rds_tuned:
        tools.append(Tool("rds-backup*", f"rds-backup {env.args.rds_tuned} (TUNED)"))
    if env.baseline is not None:
        tools.append(Tool("rds-backup@base", f"rds-backup (defaults) {env.args.baseline_label}"))
    return tools


def write_links(path: Path, urls: Sequence[tuple[str, int, str]]) -> None:
    """A saved backup-files answer, as ``rds-backup download --links-file`` reads it."""
    doc = {
        "files": [
            {
                "name": name,
                "size": -(-size // KIB),
                "download_link": url,
                "link_expired_time": "2099-01-01T00:00:00+0000",
                "database_name": "",
            }
            for name, size, url in urls
        ],
        "bucket": "bench",
    }
    path.write_text(json.dumps(doc, indent=1))


def command(
    env: Env,
    tool: Tool,
    ds: DataSet,
    out: Path,
    files: Sequence[FileSpec],
    urls: Sequence[str],
    tag: str,
) -> list[str]:
    cfg = env.workdir / "cfg"
    cfg.mkdir(exist_ok=True)
    if tool.key == "rds-cat":
        links = cfg / f"links-{tag}.json"
        write_links(links, [(f.name, f.size, u) for f, u in zip(files, urls, strict=True)])
        (spec,) = files
        cat = [*env.rds, "--quiet", "cat", "bench", spec.name, "--links-file", str(links)]
        # exec: the measured process is rds-backup itself, its stdout the output file
        return ["/bin/sh", "-c", f"exec {shlex.join(cat)} > {shlex.quote(str(out / spec.name))}"]
    if tool.key.startswith("rds-backup"):
        links = cfg / f"links-{tag}.json"
        write_links(links, [(f.name, f.size, u) for f, u in zip(files, urls, strict=True)])
        extra = shlex.split(env.args.rds_tuned) if tool.key == "rds-backup*" else []
        rds = env.baseline if tool.key == "rds-backup@base" and env.baseline else env.rds
        return [
            *rds,
            "--quiet",
            "download",
            "bench",
            "-o",
            str(out),
            "--links-file",
            str(links),
            "--progress",
            "quiet",
            *(["--ca-bundle", str(env.nginx.ca)] if ds.tls else []),
            *extra,
        ]
    if tool.key == "aria2c":
        base = [env.aria2c, *ARIA2_SET_FLAGS[ds.key], *COMMON_ARIA2, "-d", str(out)]
        if ds.tls:
            base.append(f"--ca-certificate={env.nginx.ca}")
        if len(files) == 1:
            return [*base, "-o", files[0].name, urls[0]]
        lst = cfg / f"aria2-{tag}.txt"
        lst.write_text("".join(f"{u}\n  out={f.name}\n" for f, u in zip(files, urls, strict=True)))
        return [*base, "-i", str(lst)]
    if tool.key == "curl":
        base = [env.curl, "-sS", "--fail"]
        if ds.tls:
            base += ["--cacert", str(env.nginx.ca)]
        pairs = [x for f, u in zip(files, urls, strict=True) for x in ("-o", str(out / f.name), u)]
        if len(files) == 1:
            return [*base, *pairs]
        par = 8 if ds.key == "many" else len(files)
        return [*base, "--parallel", "--parallel-max", str(par), *pairs]
    raise AssertionError(tool.key)


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_measured(argv: Sequence[str], log: Path) -> tuple[float, float, float, int, int]:
    """Run ``argv``; return (wall s, user+sys CPU s, sys CPU s, peak RSS KiB, exit code).

    Linux carries the peak RSS of the forking process into the child's ``ru_maxrss``
    (vfork and exec keep the maximum), so ``ru_maxrss`` can never read below this
    script's own peak. When it does not exceed that floor, the peak comes from sampling
    the child's ``VmHWM`` (the high-water mark of its own address space) every 20 ms.
    """
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = 0
    done = threading.Event()

    def sample(pid: int) -> None:
        nonlocal hwm
        while not done.is_set():
            hwm = max(hwm, _vm_hwm_kb(pid))
            done.wait(0.02)

    with open(log, "wb") as lf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
        sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
        sampler.start()
        timer = threading.Timer(RUN_TIMEOUT, proc.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
            done.set()
        wall = time.perf_counter() - t0
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    rss = ru.ru_maxrss if ru.ru_maxrss > floor else hwm
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_stime, rss, proc.returncode


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verify(env: Env, ds: DataSet, files: Sequence[FileSpec], out: Path) -> list[str]:
    bad = []
    for spec in files:
        p = out / spec.name
        try:
            size = p.stat().st_size
        except OSError:
            bad.append(f"{spec.name}: missing")
            continue
        if size != spec.size:
            bad.append(f"{spec.name}: {size} bytes, expected {spec.size}")
            continue
        if sha256_file(p) != env.data.sha256(ds, spec):
            bad.append(f"{spec.name}: SHA-256 differs from the source")
    return bad


def one_run(
    env: Env,
    tool: Tool,
    ds: DataSet,
    rnd: int,
    *,
    files: Sequence[FileSpec] | None = None,
    fast: bool = False,
    tag: str | None = None,
) -> RunResult:
    files = list(files or ds.files)
    tag = tag or f"{ds.key}-{tool.key.replace('*', '-tuned').replace('@', '-')}-r{rnd}"
    out = env.workdir / "runs" / tag
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    urls = [env.nginx.fast_url(ds, f) if fast else env.nginx.url(ds, f) for f in files]
    argv = command(env, tool, ds, out, files, urls, tag)
    log = env.workdir / "logs" / f"{tag}.log"
    log.parent.mkdir(exist_ok=True)
    os.sync()
    off = env.nginx.log_offset()
    wall, cpu, sys_cpu, rss, code = run_measured(argv, log)
    time.sleep(0.05)  # let nginx log the last requests
    reqs, conns, sent = env.nginx.requests_since(off)
    bad = verify(env, ds, files, out)
    if code != 0:
        bad.insert(0, f"exit code {code}")
    res = RunResult(
        tool.key, rnd, wall, cpu, rss, code, not bad, "; ".join(bad[:3]), reqs, conns, sent
    )
    total = sum(f.size for f in files)
    status = "ok" if res.verified else "FAILED"
    print(
        f"  round {rnd + 1}  {tool.label:<34} {wall:7.2f} s {total / MIB / wall:8.1f} MiB/s "
        f"cpu {cpu:6.2f} s (sys {sys_cpu:5.2f})  rss {rss * KIB / 1e6:6.1f} MB  "
        f"{reqs} reqs/{conns} conns, server sent {100 * sent / max(1, total):.0f}%  {status}",
        flush=True,
    )
    if not res.verified:
        msg = (
            f"{ds.key}: {tool.label} round {rnd + 1}: VERIFICATION FAILED: {res.detail} "
            f"(command: {shlex.join(argv)}; log: {log}; output kept in {out})"
        )
        print("!" * 78 + f"\n!! {msg}\n" + "!" * 78, flush=True)
        tail = log.read_text(errors="replace")[-1500:].strip()
        if tail:
            print("   last output:\n" + "\n".join("     " + t for t in tail.splitlines()))
        env.failures.append(msg)
    else:
        shutil.rmtree(out)
        os.sync()
    if env.args.show_commands and rnd == 0:
        print(f"      $ {shlex.join(argv)}", flush=True)
    return res


# --------------------------------------------------------------------------- reporting


@dataclass(slots=True)
class Summary:
    label: str
    runs: int
    ok: int
    wall: float | None
    mibs: float | None
    cpu_gib: float | None
    rss_mb: float | None
    reqs: int | None
    conns: int | None


def summarize(label: str, runs: Sequence[RunResult], total: int) -> Summary:
    good = [r for r in runs if r.verified]
    if not good:
        return Summary(
            label,
            len(runs),
            0,
            None,
            None,
            None,
            max((r.rss_kb for r in runs), default=0) * KIB / 1e6,
            None,
            None,
        )
    wall = statistics.median(r.wall for r in good)
    cpu = statistics.median(r.cpu for r in good)
    return Summary(
        label,
        len(runs),
        len(good),
        wall,
        total / MIB / wall,
        cpu / (total / GIB),
        max(r.rss_kb for r in runs) * KIB / 1e6,
        round(statistics.median(r.reqs for r in good)),
        round(statistics.median(r.conns for r in good)),
    )


def fmt(v: float | None, spec: str) -> str:
    if v is not None:
        return format(v, spec)
    width = re.match(r"\d*", spec)
    return "-".rjust(int(width.group() or 0) if width else 0)


def print_table(ds: DataSet, rows: Sequence[Summary], rounds: int, rate: int) -> None:
    cap = f", each connection capped at {fmt_size(rate)}/s" if ds.slow else ", no rate cap"
    print(
        f"\n== {ds.key}: {ds.title} ({fmt_size(ds.total)} in total{cap}); "
        f"median of {rounds} round(s) =="
    )
    w = max(36, *(len(s.label) for s in rows))
    head = (
        f"{'tool':<{w}} {'wall s':>8} {'MiB/s':>8} {'CPU s/GiB':>10} {'peak RSS MB':>12} "
        f"{'reqs':>6} {'conns':>6}  verified"
    )
    print(head)
    print("-" * len(head))
    for s in rows:
        ver = f"{s.ok}/{s.runs} ok" if s.ok == s.runs else f"{s.ok}/{s.runs} ** FAILED **"
        print(
            f"{s.label:<{w}} {fmt(s.wall, '8.2f')} {fmt(s.mibs, '8.1f')} "
            f"{fmt(s.cpu_gib, '10.2f')} {fmt(s.rss_mb, '12.1f')} "
            f"{fmt(s.reqs, '6d')} {fmt(s.conns, '6d')}  {ver}"
        )


@dataclass(slots=True)
class Verdict:
    what: str
    value: float | None
    target: str
    ok: bool | None  # None: could not be judged
    unit: str = "x"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# The targets: throughput as a ratio to a peer measured in the same run (None: no target).
NEED_ARIA = {"big": None, "tls": 1.5, "many": 1.5, "wan": 1.0}
NEED_CURL = {"big": 1.0, "tls": 1.0, "many": None, "wan": None}
ARIA_LABEL = {
    "big": "aria2c -x16",
    "tls": "aria2c -x16",
    "many": "aria2c -j8",
    "wan": "aria2c -x16 -s16 -j4",
}
CPU_VS_CURL = {"tls": 1.3}  # CPU-seconds per GiB, as a ratio to curl's
RSS_LIMIT_MB = 80


def judge(ds: DataSet, by_key: dict[str, Summary]) -> list[Verdict]:
    rds = by_key["rds-backup"]
    curl = by_key["curl"]
    out = []
    for peer, need in (("aria2c", NEED_ARIA[ds.key]), ("curl", NEED_CURL[ds.key])):
        r = ratio(rds.mibs, by_key[peer].mibs)
        label = ARIA_LABEL[ds.key] if peer == "aria2c" else "curl"
        out.append(
            Verdict(
                f"{ds.key}: throughput vs {label}",
                r,
                "(no target)" if need is None else f">= {need:.2f}x",
                None if need is None or r is None else r >= need,
            )
        )
    cpu_need = CPU_VS_CURL.get(ds.key)
    r_cpu = ratio(rds.cpu_gib, curl.cpu_gib)
    out.append(
        Verdict(
            f"{ds.key}: CPU s/GiB vs curl",
            r_cpu,
            "(no target)" if cpu_need is None else f"<= {cpu_need:.2f}x",
            None if cpu_need is None or r_cpu is None else r_cpu <= cpu_need,
        )
    )
    rss = rds.rss_mb if rds.ok else None
    out.append(
        Verdict(
            f"{ds.key}: rds-backup peak RSS MB",
            rss,
            f"< {RSS_LIMIT_MB}",
            unit="",
            ok=None if rss is None else rss < RSS_LIMIT_MB,
        )
    )
    return out


def print_verdicts(verdicts: Sequence[Verdict]) -> None:
    for v in verdicts:
        mark = {True: "PASS", False: "FAIL", None: "    "}[v.ok]
        val = "-" if v.value is None else f"{v.value:.2f}{v.unit}"
        print(f"  {mark}  {v.what:<48} {val:>9}   target {v.target}")


# --------------------------------------------------------------------------- machine


def tool_version(argv: Sequence[str]) -> str:
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"? ({exc})"
    text = (p.stdout or p.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def git_state() -> str:
    repo = HERE.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "downloader", "pyproject.toml"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "? (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    more = f"; uncommitted changes in {', '.join(changed)}" if changed else "; clean"
    return f"{head or '?'}{more}"


def sha256_speed() -> float:
    """MiB/s of hashlib's SHA-256 on 256 MiB in memory (a floor for hashing downloaders)."""
    block = os.urandom(4 * MIB)
    h = hashlib.sha256()
    t0 = time.process_time()
    for _ in range(64):
        h.update(block)
    return 256 / max(1e-9, time.process_time() - t0)


def machine_info(env: Env) -> list[str]:
    cpu = "?"
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = fmt_size(int(line.split()[1]) * KIB)
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    speed = sha256_speed()
    return [
        f"repo:       {git_state()}",
        f"hashlib:    SHA-256 at {speed:.0f} MiB/s in one thread here, i.e. "
        f"{GIB / MIB / speed:.2f} CPU s/GiB for any tool that hashes what it fetches",
        f"machine:    {platform.node()}  {platform.system()} {platform.release()}  "
        f"{platform.machine()}",
        f"cpu:        {os.cpu_count()} logical CPUs ({affinity} usable), {cpu}",
        f"memory:     {mem} (data is served from the page cache once read; not dropped)",
        f"python:     {platform.python_version()} ({sys.executable})",
        f"rds-backup: {tool_version([*env.rds, '--version'])}  [{shlex.join(env.rds)}]",
        f"aria2c:     {tool_version([env.aria2c, '--version'])}",
        f"curl:       {tool_version([env.curl, '--version'])}",
        f"nginx:      {tool_version([env.nginx.binary, '-v'])}",
        f"workdir:    {env.workdir}",
    ]


# --------------------------------------------------------------------------- main


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def find_rds(override: str | None) -> list[str]:
    if override:
        argv = shlex.split(override)
        try:
            ok = (
                subprocess.run([*argv, "--version"], capture_output=True, timeout=60).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            ok = False
        if not ok:
            raise BenchError(f"--rds-backup {override!r}: `{override} --version` does not run")
        return argv
    sibling = Path(sys.executable).parent / "rds-backup"
    if sibling.is_file():
        return [str(sibling)]
    found = shutil.which("rds-backup")
    if found:
        return [found]
    probe = subprocess.run(
        [sys.executable, "-c", "import downloader.cli"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "downloader"]
    raise BenchError(
        "rds-backup is not installed for this Python: run `pip install -e .` in the repository "
        "(or run this script with the venv's python, or pass --rds-backup CMD)"
    )


def ensure_tools(install: bool) -> dict[str, str]:
    found = {name: find_binary(name) for name in APT_PACKAGES}
    missing = [n for n, p in found.items() if p is None]
    if missing and install:
        pkgs = [APT_PACKAGES[n] for n in missing]
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print(f"installing {' '.join(pkgs)} with apt-get ...", flush=True)
        for argv in ([*sudo, "apt-get", "update"], [*sudo, "apt-get", "install", "-y", *pkgs]):
            try:
                rc = subprocess.run(argv, check=False).returncode
            except OSError as exc:
                raise BenchError(f"could not run {shlex.join(argv)}: {exc}") from exc
            if rc != 0:
                raise BenchError(f"`{shlex.join(argv)}` failed (exit {rc})")
        found = {name: find_binary(name) for name in APT_PACKAGES}
        missing = [n for n, p in found.items() if p is None]
    if missing:
        names = " ".join(APT_PACKAGES[n] for n in missing)
        raise BenchError(
            f"missing: {', '.join(missing)}. Install with:\n"
            f"    sudo apt-get update && sudo apt-get install -y {names}\n"
            "or run this script with --install."
        )
    return {n: p for n, p in found.items() if p is not None}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark rds-backup against aria2c and curl on a local nginx "
        "(see bench/README.md for what is measured).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: 256 MiB, 16 x 4 MiB, 128 MiB + 4 x 16 MiB (under 2 min)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds per data set (default: 3, or 2 with --quick)",
    )
    p.add_argument(
        "--sets",
        default="big,tls,many,wan,stream",
        help="comma-separated data sets among big, tls, many, wan, stream (default: all)",
    )
    p.add_argument(
        "--wan-rate",
        type=parse_rate,
        default=parse_rate("8m"),
        metavar="RATE",
        help="per-connection rate cap of the WAN-like set, nginx syntax: 8m = 8 MiB/s "
        "(default: 8m)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=HERE / "out",
        help="data, nginx files, logs and outputs; keep it on the disk to measure "
        "(default: bench/out/)",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help="apt-get install what is missing (nginx-light, aria2, curl)",
    )
    p.add_argument(
        "--rds-backup",
        dest="rds_backup",
        metavar="CMD",
        help="how to run rds-backup (default: next to this python, or on PATH)",
    )
    p.add_argument(
        "--rds-tuned",
        metavar="FLAGS",
        default="",
        help="also run rds-backup with these extra flags, labelled TUNED "
        '(e.g. "-x 16 --max-connections 16")',
    )
    p.add_argument(
        "--baseline",
        metavar="CMD",
        help="also run another rds-backup build with the same flags (e.g. one installed from "
        "an earlier commit: .../venv/bin/rds-backup), to compare two builds in one run",
    )
    p.add_argument(
        "--baseline-label",
        default="(baseline)",
        help="how to label the --baseline build in the tables (e.g. its commit)",
    )
    p.add_argument(
        "--no-rss-check",
        dest="rss_check",
        action="store_false",
        help="skip the rds-backup runs on the WAN set's big file without a cap "
        "(peak RSS at two file sizes)",
    )
    p.add_argument(
        "--show-commands", action="store_true", help="print each tool's command line (first round)"
    )
    args = p.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in sets if s not in SET_NAMES]
    if unknown or not sets:
        names = ", ".join(unknown) or "(none)"
        p.error(f"--sets: unknown set(s) {names}; use {', '.join(SET_NAMES)}")
    args.sets = sets
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Terminated

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def bench(args: argparse.Namespace) -> int:
    tools = ensure_tools(args.install)
    rds = find_rds(args.rds_backup)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "runs", ignore_errors=True)  # leftovers of an interrupted run
    sets = make_sets(args.quick)
    chosen = [sets[k] for k in args.sets]
    need = list(chosen)
    if "big" in args.sets and args.rss_check and sets["wan"] not in need:
        need.append(sets["wan"])  # its big file, unthrottled, is the smaller RSS probe
    data = Data(workdir / "data")
    data.ensure(need)
    biggest = max(ds.total for ds in chosen)
    free = shutil.disk_usage(workdir).free
    if free < biggest + 256 * MIB:
        raise BenchError(
            f"not enough disk space in {workdir} for one output copy: "
            f"{fmt_size(biggest)} needed, {fmt_size(free)} free"
        )
    nginx = Nginx(tools["nginx"], workdir, data.root, args.wan_rate)
    env = Env(args, workdir, data, nginx, rds, tools["aria2c"], tools["curl"])
    if args.baseline:
        env.baseline = find_rds(args.baseline)
    all_verdicts: list[Verdict] = []
    started = time.perf_counter()
    with sigterm_as_exit():
        try:
            first = chosen[0]
            nginx.start(f"/{first.folder}/{first.files[0].name}")
            print("\n".join(machine_info(env)))
            pid = nginx.proc.pid if nginx.proc else "?"
            print(
                f"nginx:      http://127.0.0.1:{nginx.port}/ (pid {pid}, "
                f"sendfile on, {min(2, os.cpu_count() or 1)} workers; /slow/ capped at "
                f"{fmt_size(args.wan_rate)}/s per connection)"
            )
            print(
                "units:      MiB/s = 2^20 bytes/s; RSS in MB = 10^6 bytes; CPU = user+sys of "
                "the tool's process; rounds alternate the tool order"
            )
            for ds in chosen:
                if ds.key == "stream":
                    all_verdicts += bench_stream(env, ds)
                else:
                    all_verdicts += bench_set(env, ds)
        finally:
            nginx.stop()
    print(
        f"\n== targets ({'QUICK sizes' if args.quick else 'full sizes'}; "
        f"wall {time.perf_counter() - started:.0f} s) =="
    )
    print_verdicts(all_verdicts)
    if env.failures:
        print("\n" + "!" * 78)
        print(f"!! {len(env.failures)} run(s) FAILED verification:")
        for f in env.failures:
            print(f"!!   {f}")
        print("!" * 78)
        return 1
    fails = sum(1 for v in all_verdicts if v.ok is False)
    print(f"\nall outputs verified (size and SHA-256); {fails} target(s) missed")
    return 0


def bench_set(env: Env, ds: DataSet) -> list[Verdict]:
    args = env.args
    tools = tools_for(env, ds)
    print(f"\n-- {ds.key}: {ds.title}, {args.rounds} round(s) --", flush=True)
    runs: dict[str, list[RunResult]] = {t.key: [] for t in tools}
    rss_small: list[RunResult] = []
    for rnd in range(args.rounds):
        k = rnd % len(tools)
        for tool in tools[k:] + tools[:k]:
            runs[tool.key].append(one_run(env, tool, ds, rnd))
        if ds.key == "big" and args.rss_check:
            wan = make_sets(args.quick)["wan"]
            spec = wan.files[0]
            rss_small.append(
                one_run(
                    env,
                    Tool("rds-backup", f"rds-backup {fmt_size(spec.size)} (RSS probe)"),
                    wan,
                    rnd,
                    files=[spec],
                    fast=True,
                    tag=f"rss-probe-r{rnd}",
                )
            )
    rows = [summarize(t.label, runs[t.key], ds.total) for t in tools]
    print_table(ds, rows, args.rounds, args.wan_rate)
    by_key = {t.key: s for t, s in zip(tools, rows, strict=True)}
    verdicts = judge(ds, by_key)
    if "rds-backup*" in by_key:
        tuned = by_key["rds-backup*"]
        r = ratio(tuned.mibs, by_key["aria2c"].mibs)
        print(f"  (TUNED rds-backup / aria2c: {fmt(r, '.2f')}x, not counted for the targets)")
    if "rds-backup@base" in by_key:
        base, this = by_key["rds-backup@base"], by_key["rds-backup"]

        def median_rss(key: str) -> float | None:
            got = [r.rss_kb * 1024 / 1e6 for r in runs[key] if r.verified]
            return statistics.median(got) if got else None

        print(
            f"  this build / {args.baseline_label}: throughput "
            f"{fmt(ratio(this.mibs, base.mibs), '.2f')}x, CPU s/GiB "
            f"{fmt(ratio(this.cpu_gib, base.cpu_gib), '.2f')}x, peak RSS "
            f"{fmt(this.rss_mb, '.1f')} vs {fmt(base.rss_mb, '.1f')} MB (highest round), "
            f"{fmt(median_rss('rds-backup'), '.1f')} vs "
            f"{fmt(median_rss('rds-backup@base'), '.1f')} MB (median round)"
        )
    if rss_small:
        small = make_sets(args.quick)["wan"].files[0].size
        s_small = summarize("probe", rss_small, small)
        big_rss = by_key["rds-backup"].rss_mb
        print(
            f"  rds-backup peak RSS: {fmt_size(small)} file {fmt(s_small.rss_mb, '.1f')} "
            f"MB ({fmt(s_small.mibs, '.0f')} MiB/s), {fmt_size(ds.total)} file "
            f"{fmt(big_rss, '.1f')} MB"
        )
        if s_small.rss_mb is not None and big_rss is not None:
            growth = big_rss - s_small.rss_mb
            flat = growth <= max(10.0, 0.10 * s_small.rss_mb)
            verdicts.append(
                Verdict(
                    f"RSS flat {fmt_size(small)} -> {fmt_size(ds.total)} (growth MB)",
                    growth,
                    "<= max(10 MB, 10%)",
                    flat,
                    unit="",
                )
            )
    print("  ratios (rds-backup defaults, median throughput):")
    print_verdicts(verdicts)
    return verdicts


STREAM_WINDOW_MB = 64 * MIB / 1e6  # cat's default --window


TINY_STREAM = 1000  # bytes: the tail of the stream set's file


def tiny_stream_rss(env: Env, ds: DataSet) -> float | None:
    """Peak RSS (MB) of ``cat`` streaming only the last TINY_STREAM bytes of the set's file
    (``--offset``): what the process holds before any window fills, measured the same way."""
    (spec,) = ds.files
    out = env.workdir / "runs" / "tiny-stream"
    out.mkdir(parents=True, exist_ok=True)
    urls = [env.nginx.url(ds, spec)]
    argv = command(env, Tool("rds-cat", "tiny"), ds, out, ds.files, urls, "tiny")
    argv[-1] = argv[-1].replace(" > ", f" --offset {spec.size - TINY_STREAM} > ", 1)
    _, _, _, rss, code = run_measured(argv, env.workdir / "logs" / "tiny-stream.log")
    got = (out / spec.name).stat().st_size if (out / spec.name).exists() else -1
    shutil.rmtree(out)
    if code != 0 or got != TINY_STREAM:
        print(f"  (tiny stream failed: exit {code}, {got} bytes)")
        return None
    return rss * KIB / 1e6


def bench_stream(env: Env, ds: DataSet) -> list[Verdict]:
    """``rds-backup cat NAME > file`` against ``rds-backup download`` of the same file."""
    args = env.args
    tools = [Tool("rds-backup", "rds-backup download"), Tool("rds-cat", "rds-backup cat > file")]
    print(f"\n-- {ds.key}: {ds.title}, {args.rounds} round(s) --", flush=True)
    runs: dict[str, list[RunResult]] = {t.key: [] for t in tools}
    for rnd in range(args.rounds):
        k = rnd % len(tools)
        for tool in tools[k:] + tools[:k]:
            runs[tool.key].append(one_run(env, tool, ds, rnd))
    rows = [summarize(t.label, runs[t.key], ds.total) for t in tools]
    print_table(ds, rows, args.rounds, args.wan_rate)
    dl, cat = rows
    tiny = tiny_stream_rss(env, ds)
    if tiny is not None and cat.rss_mb is not None:
        print(
            f"  cat's peak RSS above a {TINY_STREAM} B stream's ({tiny:.1f} MB, the process "
            f"before its window fills): {cat.rss_mb - tiny:.1f} MB, with a "
            f"{STREAM_WINDOW_MB:.1f} MB window"
        )
    limit = STREAM_WINDOW_MB + 40
    verdicts = [
        Verdict(
            f"{ds.key}: cat throughput vs download",
            ratio(cat.mibs, dl.mibs),
            ">= 0.90x",
            None if cat.mibs is None or dl.mibs is None else cat.mibs >= 0.9 * dl.mibs,
        ),
        Verdict(
            f"{ds.key}: cat peak RSS MB",
            cat.rss_mb,
            f"< window + 40 = {limit:.0f}",
            None if cat.rss_mb is None else cat.rss_mb < limit,
            unit="",
        ),
    ]
    print("  ratios:")
    print_verdicts(verdicts)
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        return bench(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench: interrupted (nginx and the running tool stopped)", file=sys.stderr)
        return 130
    except Terminated:
        print("\nbench: terminated (nginx and the running tool stopped)", file=sys.stderr)
        return 143
    except OSError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
