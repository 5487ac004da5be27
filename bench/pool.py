"""Pool figures in one run: take latency, cold build vs take, start to first pong, idle RSS.

    python bench/pool.py            # full run (200 takes, cold + warm-cache builds)
    python bench/pool.py --smoke    # quick run for CI, same figures from fewer samples

Everything lives in a temp dir (daemon cache dir and, unless --uv-cache is given, the uv
cache, so the cold build really is cold; --smoke keeps the caller's uv cache); the daemon is
stopped and the dir removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from harness import DaemonProcess, bench_daemon, own_uv_cache, percentile, verdict
from runtimed.client import DaemonClient
from runtimed.daemon.envs import UvEnvBuilder

TARGETS = {"take_p99_ms": 5.0, "ratio": 300.0, "start_ms": 300.0, "rss_mb": 60.0}


def build_once(prefix: Path) -> float:
    """Seconds for one env build with the daemon's own builder (uv venv + install)."""
    started = time.perf_counter()
    asyncio.run(UvEnvBuilder().build(prefix, "bench", timeout=600))
    elapsed = time.perf_counter() - started
    shutil.rmtree(prefix, ignore_errors=True)
    return elapsed


def take_latencies(socket: Path, n: int) -> tuple[list[float], int]:
    """Take and return ``n`` times on one connection; take latencies in ms, builds started."""
    latencies = []
    with DaemonClient(socket) as client:
        client.ping()  # connect outside the timed region
        for _ in range(n):
            started = time.perf_counter()
            env = client.take("uv", timeout=30)
            latencies.append((time.perf_counter() - started) * 1000)
            assert env is not None, "the warm pool ran dry"
            client.return_env(env.venv_path)
        warming = client.status().pools["uv"].warming
    return latencies, warming


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="quick run for CI")
    parser.add_argument("--takes", type=int, default=None, help="takes to time (default 200)")
    parser.add_argument("--uv-cache", help="use this uv cache instead of a fresh temp one")
    args = parser.parse_args()
    n_takes = args.takes or (20 if args.smoke else 200)
    n_starts = 3 if args.smoke else 5

    tmp = Path(tempfile.mkdtemp(prefix="runtimed-bench-"))
    own_uv_cache(tmp / "uv-cache", args.uv_cache)
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    os.environ.pop("RUNTIMED_SOCKET_PATH", None)
    daemons: list[DaemonProcess] = []
    try:
        print(
            f"runtimed pool bench ({'smoke' if args.smoke else 'full'}), python "
            f"{sys.version.split()[0]}, {os.cpu_count()} cpus"
        )

        # 1. cold build: the daemon's builder on an empty uv cache (unless --uv-cache)
        cold = build_once(tmp / "envs-bench" / "cold")
        warm_build = cold if args.smoke else build_once(tmp / "envs-bench" / "warm")

        # 2. start to first pong (median of several fresh daemons, no pools)
        starts = []
        for i in range(n_starts):
            d = bench_daemon(tmp / f"start-{i}", "--uv-pool-size", "0", "--conda-pool-size", "0")
            daemons.append(d)
            starts.append(d.start().start_secs)
            d.stop()
        start_ms = statistics.median(starts) * 1000

        # 3. a warm pool: take latency over n takes, each env returned at once
        d = bench_daemon(tmp / "cache", "--uv-pool-size", "1", "--conda-pool-size", "0")
        daemons.append(d)
        d.start()
        d.wait_pool("uv", 1, timeout=600, settled=True)
        latencies, warming = take_latencies(d.socket, n_takes)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)

        # 4. idle RSS of the daemon holding a warm pool
        d.wait_pool("uv", 1, timeout=600, settled=True)
        time.sleep(0.5)  # let it settle into idle
        assert d.proc is not None
        rss_mb = psutil.Process(d.proc.pid).memory_info().rss / 2**20
        d.stop()
    finally:
        for d in daemons:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = cold / (p50 / 1000)
    warm_ratio = warm_build / (p50 / 1000)
    print(
        f"take latency ({n_takes} takes, warm pool): p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {max(latencies):.2f} ms   [target p99 < {TARGETS['take_p99_ms']:.0f} ms: "
        f"{verdict(p99 < TARGETS['take_p99_ms'])}]"
    )
    print(f"builds left running after the take/return loop: {warming}")
    cold_what = "cold build of one env"
    if args.smoke:
        cold_what = "build of one env (smoke: the caller's uv cache)"
    print(
        f"{cold_what}: {cold:.2f} s; vs take p50: {ratio:,.0f}x   "
        f"[target > {TARGETS['ratio']:.0f}x: {verdict(ratio > TARGETS['ratio'])}]"
    )
    if not args.smoke:
        print(f"build with a warm uv cache: {warm_build:.2f} s; vs take p50: {warm_ratio:,.0f}x")
    print(
        f"daemon start to first pong: {start_ms:.0f} ms (median of {n_starts})   "
        f"[target < {TARGETS['start_ms']:.0f} ms: {verdict(start_ms < TARGETS['start_ms'])}]"
    )
    print(
        f"idle daemon RSS: {rss_mb:.1f} MB   "
        f"[target < {TARGETS['rss_mb']:.0f} MB: {verdict(rss_mb < TARGETS['rss_mb'])}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
