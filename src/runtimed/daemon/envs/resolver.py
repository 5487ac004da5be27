"""Deciding and preparing the Python environment a room's kernel runs in.

``env_source`` (DESIGN.md, "Kernels and environments"):

- ``uv:prewarmed`` / ``conda:prewarmed``: an env taken from the pool; the room owns it and
  deletes it when it goes.
- ``uv:inline``: a venv built from ``metadata.runt.uv.dependencies``; ``conda:inline``: a conda
  env from ``metadata.runt.conda.dependencies`` (+ ``channels``); ``uv:pyproject``: a venv with
  the ``[project].dependencies`` of the nearest ``pyproject.toml``. These are cached under
  ``inline-envs/`` by a hash of what they are built from and shared by every room that asks
  for the same thing, so nobody deletes them on release.
- ``auto``: inline uv deps, else inline conda deps, else the nearest pyproject.toml, else the
  prewarmed pool of the ``default_python_env`` setting.

A cached env is built straight into its final directory and its ready marker is written last:
a directory with a marker is reused (also after a daemon restart), one without is half-built
and is removed and rebuilt. Directory names come only from hashes, never from notebook text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtimed.daemon.envs.build_step import BuildFailure
from runtimed.daemon.envs.builder import EnvBuilder
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder
from runtimed.daemon.envs.env_pool import EnvPool
from runtimed.daemon.envs.env_record import (
    package_hash,
    python_runs,
    read_ready_marker,
    remove_env_dir,
    write_ready_marker,
)
from runtimed.daemon.envs.inline_envs import normalize_specs, touch_last_used
from runtimed.daemon.envs.uv_builder import UvEnvBuilder
from runtimed.errors import RuntimedError
from runtimed.protocol.control import PooledEnv

log = logging.getLogger(__name__)

AUTO = "auto"
UV_PREWARMED = "uv:prewarmed"
CONDA_PREWARMED = "conda:prewarmed"
UV_INLINE = "uv:inline"
UV_PYPROJECT = "uv:pyproject"
CONDA_INLINE = "conda:inline"

#: Every env_source ``resolve`` accepts, ``auto`` first.
ENV_SOURCES = (AUTO, UV_PREWARMED, CONDA_PREWARMED, UV_INLINE, UV_PYPROJECT, CONDA_INLINE)

#: Cached env dirs: a kind and a hex hash, nothing else.
_CACHED_DIR = re.compile(r"^(uv|pyproject|conda)-[0-9a-f]{16}$")
_MAX_SPEC_LEN = 1000
_MAX_SPECS = 500


@dataclass(frozen=True)
class ResolvedEnv:
    """The env a kernel runs in (``env.python_path``) and where it came from.

    ``owned``: the room owns the env and ``EnvResolver.release`` deletes it (pool envs);
    False for a shared cached env (inline, pyproject), which must outlive the room.
    """

    env: PooledEnv
    env_source: str
    owned: bool


class EnvResolver:
    """Turns a requested ``env_source`` into a ready env, building and caching as needed."""

    def __init__(
        self,
        pools: Mapping[str, EnvPool],
        inline_dir: Path,
        cache_dir: Path,
        default_python_env: Callable[[], str],
        conda_channels: Callable[[], list[str]],
        conda_config_file: str | None = None,
        take_timeout: float = 60.0,
        build_timeout: float = 600.0,
    ) -> None:
        self._pools = pools
        self._inline_dir = inline_dir
        self._cache_dir = cache_dir
        self._default_python_env = default_python_env
        self._conda_channels = conda_channels
        self._conda_config_file = conda_config_file
        self._take_timeout = take_timeout
        self._build_timeout = build_timeout
        self._locks: dict[str, asyncio.Lock] = {}
        self._verified: set[str] = set()
        #: How many envs this resolver has built (not reused); for tests and status.
        self.builds = 0

    # --- public ---------------------------------------------------------------------------

    async def resolve(
        self, env_source: str, notebook_metadata: dict[str, Any], notebook_path: str | None
    ) -> ResolvedEnv:
        """A ready env for ``env_source``; raises RuntimedError saying what to fix."""
        metadata = notebook_metadata if isinstance(notebook_metadata, dict) else {}
        if env_source == AUTO:
            env_source = await self.choose(metadata, notebook_path)
        if env_source == UV_PREWARMED:
            return await self._take("uv", env_source)
        if env_source == CONDA_PREWARMED:
            return await self._take("conda", env_source)
        if env_source == UV_INLINE:
            deps = normalize_specs(_metadata_specs(metadata, "uv", "dependencies") or [])
            return await self._cached(UvEnvBuilder.create(deps, None), "uv")
        if env_source == CONDA_INLINE:
            return await self._cached(self._conda_inline_builder(metadata), "conda")
        if env_source == UV_PYPROJECT:
            pyproject = await self._find_pyproject_or_fail(notebook_path)
            return await self._pyproject(pyproject)
        raise RuntimedError(
            f"unknown env_source {env_source!r}; use one of: {', '.join(ENV_SOURCES)}",
            code="invalid_env_source",
        )

    async def release(self, resolved: ResolvedEnv) -> None:
        """Delete an env the room owned (a pool env); leave shared cached envs alone."""
        if not resolved.owned:
            return
        prefix = Path(resolved.env.venv_path)
        pool = self._pools.get(resolved.env.env_type)
        if pool is None:
            log.warning("not deleting %s: no %s pool", prefix, resolved.env.env_type)
            return
        await asyncio.to_thread(_remove_pool_env, prefix, pool.envs_dir)

    # --- choosing -------------------------------------------------------------------------

    async def choose(self, metadata: dict[str, Any], notebook_path: str | None) -> str:
        """What ``auto`` means for this notebook: inline deps, a pyproject, or the pool."""
        if _metadata_specs(metadata, "uv", "dependencies"):
            return UV_INLINE
        if _metadata_specs(metadata, "conda", "dependencies"):
            return CONDA_INLINE
        if notebook_path:
            _, pyproject = await asyncio.to_thread(_locate_pyproject, notebook_path)
            if pyproject is not None:
                return UV_PYPROJECT
        default = self._default_python_env()
        return CONDA_PREWARMED if default == "conda" else UV_PREWARMED

    # --- pools ----------------------------------------------------------------------------

    async def _take(self, env_type: str, env_source: str) -> ResolvedEnv:
        pool = self._pools.get(env_type)
        if pool is None:
            raise RuntimedError(f"this daemon has no {env_type} pool", code="pool_disabled")
        env = await pool.take(self._take_timeout)
        if env is None:
            message = (
                f"the {env_type} pool had no env ready within {self._take_timeout:.0f} s; "
                "check `runt pool status`"
            )
            error = pool.status().error
            if error is not None:
                message += f" (its last build failed at step '{error.step}': {error.message})"
            raise RuntimedError(message, code="pool_empty")
        return ResolvedEnv(env=env, env_source=env_source, owned=True)

    # --- cached envs ----------------------------------------------------------------------

    def _conda_inline_builder(self, metadata: dict[str, Any]) -> CondaEnvBuilder:
        deps = _metadata_specs(metadata, "conda", "dependencies") or []
        channels = _metadata_specs(metadata, "conda", "channels") or list(self._conda_channels())
        if not channels:
            raise RuntimedError(
                "conda:inline needs a channel: set metadata.runt.conda.channels or the "
                "conda.channels setting",
                code="invalid_metadata",
            )
        return CondaEnvBuilder(
            self._cache_dir,
            tuple(sorted(set(deps))),
            tuple(dict.fromkeys(channels)),
            self._conda_config_file,
        )

    async def _pyproject(self, pyproject: Path) -> ResolvedEnv:
        deps = await asyncio.to_thread(_pyproject_dependencies, pyproject)
        builder = UvEnvBuilder.create(normalize_specs(deps), None)
        key = package_hash("uv", builder.python, builder.packages, extra=str(pyproject))
        return await self._cached(builder, "pyproject", key, UV_PYPROJECT)

    async def _cached(
        self,
        builder: EnvBuilder,
        kind: str,
        key: str | None = None,
        env_source: str | None = None,
    ) -> ResolvedEnv:
        source = env_source or f"{builder.env_type}:inline"
        name = f"{kind}-{key or builder.package_hash}"
        if not _CACHED_DIR.match(name):  # the hash is ours, but never trust a path blindly
            raise RuntimedError(f"refusing env dir name {name!r}", code="invalid_env")
        prefix = self._inline_dir / name
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            env = await self._reuse(prefix, name)
            if env is None:
                env = await self._build(builder, prefix, name, source)
            await asyncio.to_thread(touch_last_used, prefix)
        return ResolvedEnv(env=env, env_source=source, owned=False)

    async def _reuse(self, prefix: Path, name: str) -> PooledEnv | None:
        """The ready env at ``prefix``; a half-built or broken dir is removed."""
        env = await asyncio.to_thread(_ready_env, prefix)
        if env is not None and (name in self._verified or await python_runs(env.python_path)):
            self._verified.add(name)
            return env
        self._verified.discard(name)
        if await asyncio.to_thread(os.path.lexists, prefix):
            log.info("removing %s (half-built or its python no longer runs)", prefix)
            await asyncio.to_thread(remove_env_dir, prefix)
        return None

    async def _build(self, builder: EnvBuilder, prefix: Path, name: str, source: str) -> PooledEnv:
        started = time.monotonic()
        log.info("building %s for %s: %s", name, source, builder.describe())
        await asyncio.to_thread(self._inline_dir.mkdir, parents=True, exist_ok=True)
        try:
            env = await builder.build(prefix, name.rsplit("-", 1)[1], self._build_timeout)
            await asyncio.to_thread(write_ready_marker, env)
        except BaseException as exc:
            await asyncio.to_thread(remove_env_dir, prefix)
            if isinstance(exc, BuildFailure):
                raise RuntimedError(
                    _build_message(source, builder, exc), "env_build_failed"
                ) from None
            raise
        self.builds += 1
        self._verified.add(name)
        log.info("%s ready in %.1f s", name, time.monotonic() - started)
        return env

    async def _find_pyproject_or_fail(self, notebook_path: str | None) -> Path:
        if not notebook_path:
            raise RuntimedError(
                "uv:pyproject needs the notebook's path to find its pyproject.toml; "
                "open the notebook from a file or pick another env_source",
                code="no_pyproject",
            )
        start, found = await asyncio.to_thread(_locate_pyproject, notebook_path)
        if found is None:
            raise RuntimedError(
                f"no pyproject.toml found in {start} or its parents (the search stops at a "
                "directory with .git or at your home directory); add one or pick another "
                "env_source",
                code="no_pyproject",
            )
        return found


# --- helpers -------------------------------------------------------------------------------


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` in ``start`` or its parents, looking no higher than a
    directory that contains ``.git`` or the home directory (both are still checked)."""
    home = Path.home().resolve()
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
        if (directory / ".git").exists() or directory == home:
            return None
    return None


def _locate_pyproject(notebook_path: str) -> tuple[Path, Path | None]:
    """The directory the search starts in (the notebook's) and what it found there."""
    path = Path(notebook_path).expanduser().resolve()
    start = path if path.is_dir() else path.parent
    return start, find_pyproject(start)


def _pyproject_dependencies(pyproject: Path) -> list[str]:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuntimedError(f"cannot read {pyproject}: {exc}", code="invalid_pyproject") from None
    project = data.get("project", {})
    if not isinstance(project, dict):
        raise RuntimedError(f"{pyproject}: [project] is not a table", code="invalid_pyproject")
    deps = project.get("dependencies", [])
    return _check_specs(deps, f"{pyproject}: [project].dependencies", "invalid_pyproject")


def _metadata_specs(metadata: dict[str, Any], kind: str, key: str) -> list[str] | None:
    """``metadata.runt.<kind>.<key>`` as a checked list of strings; None when absent."""
    runt = metadata.get("runt")
    section = runt.get(kind) if isinstance(runt, dict) else None
    if not isinstance(section, dict) or section.get(key) is None:
        return None
    return _check_specs(section[key], f"metadata.runt.{kind}.{key}", "invalid_metadata")


def _check_specs(value: object, where: str, code: str) -> list[str]:
    """Package specs as they go to uv/rattler: plain strings, never command-line options."""
    if not isinstance(value, list) or len(value) > _MAX_SPECS:
        raise RuntimedError(f"{where} must be a list of strings", code=code)
    specs: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise RuntimedError(f"{where} must be a list of strings, got {item!r}", code=code)
        spec = item.strip()
        if (
            not spec
            or spec.startswith("-")
            or len(spec) > _MAX_SPEC_LEN
            or any(ord(c) < 32 for c in spec)
        ):
            raise RuntimedError(f"{where}: {item!r} is not a package spec", code=code)
        specs.append(spec)
    return specs


def _remove_pool_env(prefix: Path, envs_dir: Path) -> None:
    if prefix.parent.resolve() != envs_dir.resolve():
        log.warning("not deleting %s: it is not inside the pool's %s", prefix, envs_dir)
        return
    remove_env_dir(prefix)


def _ready_env(prefix: Path) -> PooledEnv | None:
    env = read_ready_marker(prefix)
    if env is None or env.venv_path != str(prefix):
        return None
    with contextlib.suppress(OSError):
        os.utime(prefix)  # last use, for whoever collects old cached envs
    return env


def _build_message(source: str, builder: EnvBuilder, failure: BuildFailure) -> str:
    what = f" ({failure.spec})" if failure.spec else ""
    return (
        f"could not build the {source} env ({builder.describe()}): "
        f"step '{failure.step}' failed{what}: {failure.message}"
    )
