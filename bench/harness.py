"""What every bench shares with the tests: the daemon runner and percentiles (in
tests/helpers.py), plus verdicts. ``DaemonProcess.stop`` fails the bench (AssertionError
with the daemon's log tail) when the daemon does not exit within its bound after
``shutdown`` or leaves its socket or daemon.json behind."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# A bench measures the daemon it started: a client that polls it before it listens must
# not start another one (bench/autostart.py turns this back on for its own clients).
os.environ.setdefault("RUNTIMED_NO_AUTOSTART", "1")
# Nor may a bench write to the user's ~/.ipython or Jupyter runtime dir (jupyter_client
# creates them when it looks up a kernelspec or starts a raw kernel for a baseline).
_SCRATCH = tempfile.mkdtemp(prefix="runtimed-bench-home-")
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
os.environ.setdefault("IPYTHONDIR", os.path.join(_SCRATCH, "ipython"))
os.environ.setdefault("JUPYTER_RUNTIME_DIR", os.path.join(_SCRATCH, "jupyter-runtime"))

#: ``--smoke`` on the command line: a smoke check (CI runs every bench so, one after
#: another), which must only show that the bench's code paths still run, in seconds.
SMOKE = "--smoke" in sys.argv[1:]
if SMOKE:
    # Envs are built without compiling all of site-packages: ~8 CPU-s a build, most of a
    # smoke run's time on 2 cores (kernels compile what they import instead, ~0.8 s).
    os.environ.setdefault("RUNTIMED_UV_COMPILE_BYTECODE", "0")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import DaemonProcess, percentile  # noqa: E402 - after the environment set-up

__all__ = [
    "SMOKE",
    "DaemonProcess",
    "OtherRoom",
    "PeakRss",
    "bench_daemon",
    "own_uv_cache",
    "percentile",
    "verdict",
    "wait_settled",
]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def own_uv_cache(path: Path, given: str | None = None) -> None:
    """A full run builds envs in a uv cache of its own at ``path`` (a cold build is then
    really cold) unless ``given``; a smoke run keeps the caller's uv cache (.ci/bench_smoke
    shares one: an empty cache downloads ipykernel's wheels again, ~8 s, in every bench)."""
    if given:
        os.environ["UV_CACHE_DIR"] = given
    elif not SMOKE:
        os.environ["UV_CACHE_DIR"] = str(path)


def bench_daemon(cache_dir: Path, *args: str) -> DaemonProcess:
    """`runtimed run` on its own cache and config dirs; extra ``args`` as on the CLI."""
    return DaemonProcess(cache_dir, list(args))


def kernels_ready(d: DaemonProcess) -> int:
    with d.client() as c:
        kernels = c.status().kernels
    return kernels.available if kernels is not None else 0


def wait_settled(d: DaemonProcess, kernels: int, uv: int = 2, timeout: float = 300) -> None:
    """Until ``uv`` envs are ready with no build running and ``kernels`` pooled kernels
    wait: a refill (a kernel starting) would compete with what is measured for the CPU."""
    d.wait_pool("uv", uv, timeout=timeout, settled=True)
    deadline = time.monotonic() + timeout
    while kernels_ready(d) < kernels:
        if time.monotonic() > deadline:
            raise SystemExit("the kernel pool did not fill in time")
        time.sleep(0.05)
    time.sleep(0.5)  # let the refills' CPU settle before measuring


# Another room's client: run("1") until stdin closes, then print (end, duration) of each.
_PROBE = """
import json, sys, threading, time
import runtimed
durations, stop = [], threading.Event()
with runtimed.Session(socket_path=sys.argv[1]) as other:
    other.run("1")
    print("ready", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        started = time.perf_counter()
        other.run("1")
        durations.append((time.time(), time.perf_counter() - started))
print(json.dumps(durations), flush=True)
"""


class OtherRoom:
    """Another notebook's client, in a process of its own (in the bench's process it would
    wait for the GIL while the bench decodes big results), running ``run("1")`` in a loop.
    ``stop()`` returns the durations (s) of the runs that overlapped the window between
    ``mark()`` and ``stop()``."""

    def __init__(self, d: DaemonProcess) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE, str(d.socket_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        assert self._proc.stdout.readline().strip() == "ready"
        self._start = time.time()

    def mark(self) -> None:
        self._start = time.time()

    def stop(self) -> list[float]:
        end = time.time()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        runs = json.loads(self._proc.stdout.readline())
        self._proc.wait(60)
        return [dur for ended, dur in runs if ended >= self._start and ended - dur <= end]


class PeakRss:
    """The highest RSS of the daemon while the block runs, polled every 10 ms."""

    def __init__(self, d: DaemonProcess) -> None:
        self.process = d.process
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except Exception:
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def grown(self) -> int:
        return self.peak - self.base
