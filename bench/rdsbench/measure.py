"""Running one command and measuring it: wall time, CPU seconds (user + sys) and peak RSS.

May import: the standard library only.
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

RUN_TIMEOUT = 30 * 60.0


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
