"""Auto-start figures in one run (issue 13).

    python bench/autostart.py            # full run
    python bench/autostart.py --smoke    # quick run for CI

`Session()` + `run("1+1")` in a fresh process that finds no daemon (auto-start included):
with an empty cache dir (envs built first), and with the envs of an earlier daemon left
on disk (a restart, or the next login) - against the same with the daemon running.
Default settings, except the conda pool (conda-forge is unreachable here); ``--smoke``
also keeps one uv env ready instead of three and no pooled kernel (the pools are refilled
after each phase).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import verdict
from runtimed.client import DaemonClient

CLIENT = """\
import sys, runtimed
with runtimed.Session(socket_path=sys.argv[1]) as s:
    assert s.run("1+1").display_data[0].data["text/plain"] == "2"
"""


def first_result(cache: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", CLIENT, str(cache / "runtimed.sock")],
        env=env,
        check=True,
        timeout=600,
        capture_output=True,
    )
    return time.perf_counter() - started


def stop(cache: Path) -> None:
    with DaemonClient(cache / "runtimed.sock", autostart=False) as client:
        pid = client.daemon_info().pid
        client.shutdown()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def settle(cache: Path) -> None:
    """Until the pools are full and idle again."""
    with DaemonClient(cache / "runtimed.sock", autostart=False) as client:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = client.status()
            uv, kernels = status.pools["uv"], status.kernels
            if (
                uv.available >= uv.target
                and uv.warming == 0
                and (kernels is None or kernels.available >= kernels.target)
            ):
                return
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="one run of each")
    smoke = parser.parse_args().smoke
    runs = 1 if smoke else 3
    with tempfile.TemporaryDirectory(prefix="runtimed-bench-autostart-") as tmp:
        base = Path(tmp)
        (base / "config").mkdir()
        small = {"uv": {"pool_size": 1}, "kernel_pool": {"size": 0}}
        settings = {"conda": {"pool_size": 0}, **(small if smoke else {})}
        (base / "config" / "settings.json").write_text(json.dumps(settings))
        env = {**os.environ, "RUNTIMED_CONFIG_DIR": str(base / "config")}
        env.pop("RUNTIMED_NO_AUTOSTART", None)
        cold, warm, running = [], [], []
        for i in range(runs):
            cache = base / f"cache-{i}"
            try:
                cold.append(first_result(cache, env))  # empty cache dir
                settle(cache)
                running.append(first_result(cache, env))
                settle(cache)
                stop(cache)
                warm.append(first_result(cache, env))  # envs of the last daemon on disk
                if not smoke:  # (a smoke run stops it at once, refills in flight)
                    settle(cache)
            finally:
                stop(cache)
    ms = {
        k: statistics.median(v) * 1000
        for k, v in (("cold", cold), ("warm", warm), ("run", running))
    }
    print(f"Session() + run('1+1') in a fresh process, median of {runs}:")
    print(f"  no daemon, empty cache (auto-start + env build): {ms['cold']:8.0f} ms")
    print(f"  no daemon, envs on disk (auto-start):            {ms['warm']:8.0f} ms")
    print(f"  daemon running:                                  {ms['run']:8.0f} ms")
    ok = ms["warm"] < 5 * ms["run"] + 2000
    print(f"  auto-start costs {ms['warm'] - ms['run']:.0f} ms over a running daemon {verdict(ok)}")


if __name__ == "__main__":
    main()
