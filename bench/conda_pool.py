"""Conda pool figures: take latency (take + return, through a real daemon) and the build
time of one env from a local channel (real py-rattler solve + install + compile + verify).

    .venv/bin/python bench/conda_pool.py            # 200 takes, 5 builds
    .venv/bin/python bench/conda_pool.py --smoke    # quick CI run

conda-forge is not reachable from CI, so the channel is made locally (tests/conda_channel.py).
Everything lives in a temp dir that is removed at the end; the daemon is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conda_channel import build_channel  # noqa: E402
from runtimed.client import DaemonClient  # noqa: E402
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def build_times(channel: str, base: Path, runs: int) -> dict[str, float | None]:
    """First build with an empty package cache, then builds that reuse it."""
    builder = CondaEnvBuilder(base / "build-cache", channels=(channel,))
    times = []
    for i in range(runs):
        started = time.perf_counter()
        await builder.build(base / "build-envs" / f"runtimed-conda-{i:012x}", f"{i:012x}", 300)
        times.append(time.perf_counter() - started)
    return {
        "cold_s": round(times[0], 3),
        "warm_median_s": round(statistics.median(times[1:]), 3) if runs > 1 else None,
    }


def take_latency(channel: str, base: Path, takes: int, pool: int) -> dict[str, float]:
    cache = base / "daemon"
    cmd = [
        sys.executable,
        "-m",
        "runtimed",
        "run",
        "--cache-dir",
        str(cache),
        "--uv-pool-size",
        "0",
        "--conda-pool-size",
        str(pool),
        "--conda-channel",
        channel,
    ]
    cache.mkdir(parents=True)
    log = (base / "daemon.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        sock = cache / "runtimed.sock"
        deadline = time.monotonic() + 120
        started = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"daemon exited:\n{(base / 'daemon.log').read_text()}")
            try:
                with DaemonClient(sock, timeout=5, autostart=False) as c:
                    if c.status().pools["conda"].available >= pool:
                        break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"pool never filled:\n{(base / 'daemon.log').read_text()}")
            time.sleep(0.05)
        fill = time.perf_counter() - started
        latencies = []
        with DaemonClient(sock, autostart=False) as c:
            for _ in range(takes):
                t0 = time.perf_counter()
                env = c.take("conda")
                latencies.append((time.perf_counter() - t0) * 1000)
                assert env is not None
                c.return_env(env.venv_path)
            c.shutdown()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
    return {
        "takes": takes,
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "max_ms": round(max(latencies), 3),
        "pool_fill_s": round(fill, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="few takes and one build (CI)")
    parser.add_argument("--takes", type=int, default=200)
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--pool", type=int, default=3)
    args = parser.parse_args()
    takes, builds = (20, 1) if args.smoke else (args.takes, args.builds)
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    with tempfile.TemporaryDirectory(prefix="runtimed-bench-conda-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        channel = build_channel(base / "channel")
        channel_s = time.perf_counter() - started
        result = {
            "channel_index_s": round(channel_s, 3),
            "build": asyncio.run(build_times(channel, base, builds)),
            "take": take_latency(channel, base, takes, args.pool),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
