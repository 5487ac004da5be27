"""Kernel pool figures in one run (issue 15).

    python bench/kernel_pool.py            # full run (10 fresh processes each way)
    python bench/kernel_pool.py --smoke    # quick run for CI

1. `Session()` + `run("1+1")` after `import runtimed`, in fresh processes, with the kernel
   pool and without it (same daemon settings otherwise): medians. Targets: < 50 ms with
   the pool, and < 0.3x of the time without it.
2. The whole process, `python -c 'import runtimed; ...'`, and the import alone.
3. Memory of one idle pooled kernel (RSS and USS).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from harness import DaemonProcess, bench_daemon, verdict, wait_settled
from runtimed.client.settings_client import SettingsClient

CLIENT = """\
import sys, time, json
t0 = time.perf_counter()
import runtimed
runtimed.Session
t1 = time.perf_counter()
with runtimed.Session(socket_path=sys.argv[1]) as s:
    r = s.run("1+1")
t2 = time.perf_counter()
assert r.display_data[0].data["text/plain"] == "2", r
print(json.dumps({"import": t1 - t0, "first_result": t2 - t1}))
"""


def fresh_processes(d: DaemonProcess, runs: int, kernels: int) -> list[dict[str, float]]:
    results = []
    for _ in range(runs):
        wait_settled(d, kernels)
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, str(d.socket_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        figures = json.loads(out.stdout)
        figures["process"] = time.perf_counter() - started
        results.append(figures)
    return results


def pooled_kernel_memory(d: DaemonProcess) -> tuple[float, float, float]:
    """RSS and USS (MB) of the one kernel the daemon runs while no notebook is open, and
    the RSS of its guard (the subreaper parent every kernel has)."""
    procs = [p for p in d.process.children(recursive=True) if any(
        "launcher.py" in part for part in p.cmdline())]  # fmt: skip
    guards = [p for p in procs if any("guard.py" in part for part in p.cmdline())]
    kernels = [p for p in procs if p not in guards]
    if len(kernels) != 1 or len(guards) != 1:
        raise SystemExit(f"expected one idle pooled kernel, found {len(kernels)}")
    info = kernels[0].memory_full_info()
    return info.rss / 2**20, info.uss / 2**20, guards[0].memory_info().rss / 2**20


def median(results: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in results) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="1 process each way")
    args = parser.parse_args()
    runs = 1 if args.smoke else 10
    with tempfile.TemporaryDirectory(prefix="runtimed-bench-kpool-") as tmp:
        d = bench_daemon(
            Path(tmp) / "cache", "--uv-pool-size", "2", "--conda-pool-size", "0",
            "--kernel-pool-size", "1",
        )  # fmt: skip
        try:
            d.start()
            with SettingsClient(d.socket_path) as settings:
                settings.set("keep_alive_secs", 0.5)  # rooms (and kernels) go soon after
            wait_settled(d, 1)
            rss, uss, guard_rss = pooled_kernel_memory(d)
            with_pool = fresh_processes(d, runs, kernels=1)
            with SettingsClient(d.socket_path) as settings:
                settings.set("kernel_pool.size", 0)
            without = fresh_processes(d, runs, kernels=0)
        finally:
            d.stop()
    pooled, cold = median(with_pool, "first_result"), median(without, "first_result")
    ratio = pooled / cold
    print(f"Session() + run('1+1') after import, median of {runs} fresh processes:")
    print(f"  with the kernel pool:     {pooled:7.1f} ms  (target < 50 ms) {verdict(pooled < 50)}")
    print(f"  without (kernel starts):  {cold:7.1f} ms")
    print(f"  ratio: {ratio:.2f}x (target < 0.3x) {verdict(ratio < 0.3)}")
    print("whole process `python -c 'import runtimed; ...'`, median:")
    print(f"  with the kernel pool:     {median(with_pool, 'process'):7.1f} ms")
    print(f"  without:                  {median(without, 'process'):7.1f} ms")
    print(f"  of which `import runtimed` + Session class: {median(with_pool, 'import'):.1f} ms")
    print(f"idle pooled kernel: RSS {rss:.0f} MB, USS {uss:.0f} MB", end="")
    print(f" (its guard: RSS {guard_rss:.0f} MB)")
    print(f"(psutil {psutil.__version__}; {runs} runs each)")


if __name__ == "__main__":
    main()
