"""``pixi:toml``: the kernel runs in the default environment of the nearest ``pixi.toml``.

``pixi install --manifest-path <pixi.toml>`` makes (or updates) ``.pixi/envs/default`` in
the project, as ``pixi run`` would; the kernel then starts from that env's Python, so it
needs ``ipykernel`` among the project's dependencies. This needs the ``pixi`` binary on
PATH (the package manager from prefix.dev; the ``pixi`` package on PyPI is an unrelated
Pixiv downloader and is refused). Without it the start fails with ``pixi_missing``, which
says how to get pixi.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from runtimed.daemon.envs.build_step import BuildFailure, run_build_step
from runtimed.daemon.envs.project_files import read_toml
from runtimed.daemon.trust.package_names import Dependency, conda_dependencies, pypi_dependency
from runtimed.errors import RuntimedError
from runtimed.protocol.control import PooledEnv

_VERSION = re.compile(r"^pixi \d+\.\d+")
HOW_TO_GET = (
    "install pixi (https://pixi.sh: `curl -fsSL https://pixi.sh/install.sh | sh`, or "
    "`conda install -c conda-forge pixi`, or `cargo install --locked pixi`) so that `pixi` "
    "is on the daemon's PATH, then start the kernel again; or pick another env_source. "
    "(The `pixi` package on PyPI is not it: it is a Pixiv downloader.)"
)


async def pixi_binary() -> str:
    """The pixi package manager on PATH, or ``pixi_missing`` saying how to get it."""
    found = shutil.which("pixi")
    if found is None:
        raise RuntimedError(f"pixi:toml needs the pixi binary, not found on PATH; {HOW_TO_GET}",
                            code="pixi_missing")  # fmt: skip
    try:
        output = await run_build_step("pixi", [found, "--version"], 10)
    except BuildFailure as failure:
        output = failure.message
    if not _VERSION.match(output.strip()):
        raise RuntimedError(
            f"{found} is not the pixi package manager (`pixi --version` said "
            f"{output.strip()[:80]!r}); {HOW_TO_GET}",
            code="pixi_missing",
        )
    return found


def pixi_dependencies(manifest: Path) -> list[Dependency]:
    """What ``manifest`` installs: conda ``[dependencies]`` from its channels and
    ``[pypi-dependencies]`` (path, git and URL entries are direct references)."""
    data = read_toml(manifest, "invalid_pixi_toml")
    table = data.get("workspace") or data.get("project") or {}
    channels = table.get("channels", []) if isinstance(table, dict) else []
    names = [c if isinstance(c, str) else str(c.get("channel", "")) for c in channels]
    origin = str(manifest)
    found: list[Dependency] = []
    for name, value in _table(data, "dependencies").items():
        found.extend(conda_dependencies(f"{name} {value}" if isinstance(value, str) else name,
                                        names, origin))  # fmt: skip
    for name, value in _table(data, "pypi-dependencies").items():
        direct = _direct(value)
        spec = f"{name} @ {direct}" if direct and "://" in direct else (direct or name)
        found.append(pypi_dependency(spec, origin))
    return found


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    return value if isinstance(value, dict) else {}


def _direct(value: object) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in ("path", "url", "git"):
        if isinstance(value.get(key), str):
            return str(value[key])
    return None


async def pixi_env(manifest: Path, timeout: float) -> PooledEnv:
    """Install the project's default env and check that it can run a kernel."""
    binary = await pixi_binary()
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "CONDA_PREFIX"}}
    deadline = time.monotonic() + timeout
    argv = [binary, "install", "--manifest-path", str(manifest)]
    try:
        await run_build_step("pixi install", argv, timeout, env)
        prefix = manifest.parent / ".pixi" / "envs" / "default"
        python = prefix / "bin" / "python"
        if not await asyncio.to_thread(python.exists):
            raise BuildFailure("verify", f"{python} does not exist: add python to pixi.toml")
        left = max(deadline - time.monotonic(), 0.01)
        await run_build_step("verify", [str(python), "-c", "import ipykernel"], left, env)
    except BuildFailure as failure:
        raise RuntimedError(
            f"could not prepare the pixi env of {manifest}: step '{failure.step}' failed: "
            f"{failure.message} (the kernel needs ipykernel in the project's dependencies)",
            code="env_build_failed",
        ) from None
    return PooledEnv(
        env_type="conda",
        venv_path=str(prefix),
        python_path=str(python),
        prewarmed_packages=[],
        created_at=time.time(),
    )
