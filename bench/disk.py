"""Disk collection figures in one run (issue 13).

    python bench/disk.py            # full run: 20 abandoned inline envs and rooms
    python bench/disk.py --smoke    # 1 of each

A cache dir with N inline envs (notebooks with their own dependencies, each spelled
differently so each gets its env) and N stored rooms of notebooks since deleted, all
abandoned; then one collection (`runt env clean --all`). Prints the cache dir's size
before and after, and what went.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

import runtimed
from harness import bench_daemon, verdict
from runtimed.client.settings_client import SettingsClient
from runtimed.daemon.envs.inline_envs import dir_size


def abandoned_notebook(folder: Path, i: int) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["runt"] = {"uv": {"dependencies": [f"ipykernel>=6.{i}"]}}
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    path = folder / f"abandoned-{i}.ipynb"
    nbformat.write(nb, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="1 env and room")
    n = 1 if parser.parse_args().smoke else 20
    with tempfile.TemporaryDirectory(prefix="runtimed-bench-disk-") as tmp:
        base = Path(tmp)
        d = bench_daemon(base / "cache", "--uv-pool-size", "1", "--conda-pool-size", "0")
        try:
            d.start()
            with SettingsClient(d.socket_path) as settings:
                settings.set("keep_alive_secs", 0.2)
            notebooks = base / "notebooks"
            notebooks.mkdir()
            started = time.perf_counter()
            for i in range(n):
                path = abandoned_notebook(notebooks, i)
                with runtimed.Session.open(path, socket_path=d.socket_path) as s:
                    assert s.run("1 + 1").success
                path.unlink()  # the notebook is gone; its env and room stay behind
            built = time.perf_counter() - started
            with d.client() as c:  # rooms evicted, kernels stopped: nothing in use
                deadline = time.monotonic() + 60
                while c.list_rooms() and time.monotonic() < deadline:
                    time.sleep(0.1)
                before = dir_size(d.cache_dir)
                disk = c.list_envs()
                inline = [e for e in disk.envs if not e.kind.startswith("pool-")]
                started = time.perf_counter()
                done = c.clean_envs(all=True)
                took = time.perf_counter() - started
                after = dir_size(d.cache_dir)
        finally:
            d.stop()
    print(f"cache with {len(inline)} abandoned inline envs and {disk.stored_rooms} stored rooms")
    print(f"  (built in {built:.0f} s)")
    print(f"  before: {before / 2**20:8.0f} MB")
    freed = (before - after) / 2**20
    print(f"  after:  {after / 2**20:8.0f} MB  ({freed:.0f} MB freed in {took:.1f} s)")
    envs, rooms, blobs = len(done.removed_envs), done.removed_rooms, done.removed_blobs
    print(f"  removed {envs} envs, {rooms} rooms, {blobs} blobs")
    ok = len(done.removed_envs) == n and done.removed_rooms >= n
    print(f"  every abandoned env and room collected: {verdict(ok)}")


if __name__ == "__main__":
    main()
