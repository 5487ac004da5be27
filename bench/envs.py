"""Cold and warm kernel start per env source (issue 28), through a real daemon.

Cold: the first start of a notebook whose env does not exist yet (the env is built, then
the kernel starts; the uv cache is warm, so uv runs offline). Warm: a second notebook
asking for the same env (cached), i.e. the kernel start alone. Baseline: a
``uv:prewarmed`` start from the pool. Also: how long an untrusted notebook takes to be
refused (nothing is built). ``--smoke``: uv:pep723 and the refusal only.

    python bench/envs.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import bench_daemon
from runtimed import Session
from runtimed.errors import RuntimedError

SCRIPT = '# /// script\n# dependencies = ["{dep}"]\n# ///\nprint("ok")\n'


def notebook(path: Path, metadata: dict[str, Any], first_cell: str = "print('ok')") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cell = {"cell_type": "code", "source": first_cell, "metadata": {}, "outputs": [],
            "execution_count": None, "id": "c1"}  # fmt: skip
    path.write_text(json.dumps({"cells": [cell], "metadata": metadata, "nbformat": 4,
                                "nbformat_minor": 5}))  # fmt: skip
    return path


def start_secs(socket: Path, path: Path, env_source: str = "auto") -> tuple[float, str]:
    """Seconds from start_kernel to the first cell's result, and the source used."""
    with Session.open(path, socket) as session:
        session.trust()
        started = time.perf_counter()
        session.start_kernel(env_source=env_source)
        result = session.run("print('ok')", timeout=600)
        took = time.perf_counter() - started
        assert result.stdout.strip() == "ok", result
        source = session.env_source or "?"
        session.shutdown_kernel()
    return took, source


def refusal_secs(socket: Path, root: Path) -> float:
    path = notebook(root / "untrusted" / "nb.ipynb", {"runt": {"uv": {"dependencies": ["six"]}}})
    with Session.open(path, socket) as session:
        started = time.perf_counter()
        try:
            session.start_kernel()
        except RuntimedError as exc:
            assert exc.code == "untrusted_dependencies", exc
            return time.perf_counter() - started
    raise AssertionError("an untrusted notebook started")


def cases(root: Path, smoke: bool) -> dict[str, tuple[Path, Path]]:
    """source -> (cold notebook, warm notebook): the same env, two notebooks."""
    stamp = str(time.time_ns())  # a dependency set no earlier run has built
    dep = f"six; python_version > '{stamp[-6:]}' or python_version >= '3'"
    found: dict[str, tuple[Path, Path]] = {}
    found["uv:pep723"] = tuple(  # type: ignore[assignment]
        notebook(root / f"pep723-{n}" / "nb.ipynb", {}, SCRIPT.format(dep=dep)) for n in (1, 2)
    )
    if smoke:
        return found
    meta = {"runt": {"uv": {"dependencies": ["packaging", dep]}}}
    found["uv:inline"] = tuple(  # type: ignore[assignment]
        notebook(root / f"inline-{n}" / "nb.ipynb", meta) for n in (1, 2)
    )
    project = root / "project"
    (project / ".git").mkdir(parents=True)
    # A new path each run: the pyproject env is keyed by its file, so the first is cold.
    (project / "pyproject.toml").write_text(
        '[project]\nname = "b"\nversion = "0"\ndependencies = ["six"]\n'
    )
    found["uv:pyproject"] = tuple(  # type: ignore[assignment]
        notebook(project / f"sub{n}" / "nb.ipynb", {}) for n in (1, 2)
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conda_channel import build_channel

    channel = build_channel(root / "channel", extra=[("conda-extra", "1.0", [])])
    conda_project = root / "conda-project"
    (conda_project / ".git").mkdir(parents=True)
    (conda_project / "environment.yml").write_text(
        f"channels: [{channel}]\ndependencies: [conda-extra]\n"
    )
    found["conda:env_yml"] = tuple(  # type: ignore[assignment]
        notebook(conda_project / f"sub{n}" / "nb.ipynb", {}) for n in (1, 2)
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="uv:pep723 and the refusal only")
    args = parser.parse_args()
    if args.smoke:  # no compileall of site-packages (~8 CPU-s a build): smoke stays short
        os.environ.setdefault("RUNTIMED_UV_COMPILE_BYTECODE", "0")
    with tempfile.TemporaryDirectory(prefix="runtimed-bench-envs-") as tmp:
        root = Path(tmp)
        pool = "0" if args.smoke else "1"
        d = bench_daemon(root / "cache", "--uv-pool-size", pool).start()
        try:
            refused = refusal_secs(d.socket_path, root) * 1000
            print(f"untrusted notebook refused in {refused:.0f} ms (nothing built)")
            if not args.smoke:
                d.wait_pool("uv", 1)
                base = notebook(root / "pool" / "nb.ipynb", {})
                secs, _ = start_secs(d.socket_path, base, "uv:prewarmed")
                print(f"baseline uv:prewarmed (pool) start: {secs:.2f} s")
            print(f"{'source':16} {'cold (s)':>9} {'warm (s)':>9}")
            for source, (cold_nb, warm_nb) in cases(root, args.smoke).items():
                cold, used = start_secs(d.socket_path, cold_nb)
                warm, _ = start_secs(d.socket_path, warm_nb)
                assert used == source, (used, source)
                print(f"{source:16} {cold:9.2f} {warm:9.2f}")
            if not args.smoke:
                print("pixi:toml        unavailable here: no pixi binary (error pixi_missing)")
        finally:
            d.stop()


if __name__ == "__main__":
    main()
