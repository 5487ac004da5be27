"""Deciding and preparing the Python environment a room's kernel runs in.

``env_source`` (DESIGN.md, "Kernels and environments"; ``auto``'s order is in
``sources.py``):

- ``uv:prewarmed`` / ``conda:prewarmed``: an env taken from the pool; the room owns it and
  deletes it when it goes.
- ``uv:inline``: a venv built from ``metadata.runt.uv.dependencies``; ``conda:inline``: a conda
  env from ``metadata.runt.conda.dependencies`` (+ ``channels``); ``uv:pep723``: a venv from
  the first code cell's ``# /// script`` block; ``uv:pyproject``: a venv with the
  ``[project].dependencies`` of the nearest ``pyproject.toml``; ``conda:env_yml``: a conda
  env from the nearest ``environment.yml`` (its pip section through uv). These are cached
  under ``inline-envs/`` by a hash of what they are built from and shared by every room
  that asks for the same thing, so nobody deletes them on release.
- ``pixi:toml``: the default env of the nearest ``pixi.toml`` (``pixi install``), in the
  project's own ``.pixi/``.

Every source that installs packages goes through ``NotebookTrust.check`` first: a package
the user has not approved stops the start with ``untrusted_dependencies`` before any tool
runs.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtimed.daemon.envs.build_step import BuildFailure
from runtimed.daemon.envs.builder import EnvBuilder
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder
from runtimed.daemon.envs.dependency_specs import metadata_specs
from runtimed.daemon.envs.env_pool import EnvPool
from runtimed.daemon.envs.env_record import (
    package_hash,
    python_runs,
    read_ready_marker,
    remove_env_dir,
    write_ready_marker,
)
from runtimed.daemon.envs.env_yml import EnvYmlBuilder, read_environment_yml
from runtimed.daemon.envs.inline_envs import normalize_specs, touch_last_used
from runtimed.daemon.envs.notebook_trust import NotebookTrust
from runtimed.daemon.envs.pep723 import check_python, script_metadata
from runtimed.daemon.envs.pixi_env import pixi_env
from runtimed.daemon.envs.project_files import (
    find_project_file,
    find_pyproject,
    notebook_dir,
    pyproject_dependencies,
)
from runtimed.daemon.envs.sources import (
    AUTO,
    CONDA_ENV_YML,
    CONDA_INLINE,
    CONDA_PREWARMED,
    ENV_SOURCES,
    PIXI_TOML_SOURCE,
    PROJECT_SOURCES,
    UV_INLINE,
    UV_PEP723,
    UV_PREWARMED,
    UV_PYPROJECT,
    NotebookFacts,
    choose,
)
from runtimed.daemon.envs.uv_builder import UvEnvBuilder
from runtimed.daemon.trust.trust_gate import TrustGate
from runtimed.errors import RuntimedError
from runtimed.protocol.control import PooledEnv

__all__ = ["ENV_SOURCES", "EnvResolver", "ResolvedEnv", "find_pyproject"]

log = logging.getLogger(__name__)

#: Cached env dirs: a kind and a hex hash, nothing else.
_CACHED_DIR = re.compile(r"^(uv|pyproject|conda|envyml)-[0-9a-f]{16}$")


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
    """Turns a requested ``env_source`` into a ready env, building and caching as needed.

    ``trust`` is the gate every installing source passes; ``TrustGate.trusting_everything()``
    turns it off (tests of the builders, embedding)."""

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
        *,
        trust: TrustGate,
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
        self.trust = NotebookTrust(trust, default_python_env, conda_channels)
        #: How many envs this resolver has built (not reused); for tests and status.
        self.builds = 0

    # --- public ---------------------------------------------------------------------------

    async def resolve(
        self,
        env_source: str,
        notebook_metadata: dict[str, Any],
        notebook_path: str | None,
        first_code_cell: str | None = None,
    ) -> ResolvedEnv:
        """A ready env for ``env_source``; raises RuntimedError saying what to fix."""
        metadata = notebook_metadata if isinstance(notebook_metadata, dict) else {}
        facts = NotebookFacts(metadata, notebook_path, first_code_cell)
        if env_source == AUTO:
            env_source = await self.choose(metadata, notebook_path, first_code_cell)
        if env_source == UV_PREWARMED:
            return await self._take("uv", env_source)
        if env_source == CONDA_PREWARMED:
            return await self._take("conda", env_source)
        if env_source not in ENV_SOURCES:
            raise RuntimedError(
                f"unknown env_source {env_source!r}; use one of: {', '.join(ENV_SOURCES)}",
                code="invalid_env_source",
            )
        project = await self._project_file(env_source, notebook_path)
        # The gate comes before any tool runs: an untrusted notebook installs nothing.
        await asyncio.to_thread(self.trust.check, env_source, facts)
        if env_source == UV_INLINE:
            deps = normalize_specs(metadata_specs(metadata, "uv", "dependencies") or [])
            return await self._cached(UvEnvBuilder.create(deps, None), "uv")
        if env_source == CONDA_INLINE:
            return await self._cached(self._conda_inline_builder(metadata), "conda")
        if env_source == UV_PEP723:
            return await self._pep723(first_code_cell)
        if env_source == UV_PYPROJECT:
            return await self._pyproject(project)
        if env_source == CONDA_ENV_YML:
            return await self._env_yml(project)
        env = await pixi_env(project, self._build_timeout)
        return ResolvedEnv(env=env, env_source=PIXI_TOML_SOURCE, owned=False)

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

    async def choose(
        self,
        metadata: dict[str, Any],
        notebook_path: str | None,
        first_code_cell: str | None = None,
    ) -> str:
        """What ``auto`` means for this notebook (``sources.choose``)."""
        facts = NotebookFacts(metadata, notebook_path, first_code_cell)
        if notebook_path is None:  # no project file to search for: nothing blocks
            return choose(facts, self._default_python_env()).source
        choice = await asyncio.to_thread(choose, facts, self._default_python_env())
        return choice.source

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
        deps = metadata_specs(metadata, "conda", "dependencies") or []
        channels = metadata_specs(metadata, "conda", "channels") or list(self._conda_channels())
        if not channels:
            raise RuntimedError(
                "conda:inline needs a channel: set metadata.runt.conda.channels or the "
                "conda.channels setting",
                code="invalid_metadata",
            )
        return self._conda_builder(deps, channels)

    def _conda_builder(self, deps: list[str] | tuple[str, ...], channels: Any) -> CondaEnvBuilder:
        return CondaEnvBuilder(
            self._cache_dir,
            tuple(sorted(set(deps))),
            tuple(dict.fromkeys(channels)),
            self._conda_config_file,
        )

    async def _pep723(self, first_code_cell: str | None) -> ResolvedEnv:
        script = script_metadata(first_code_cell)
        if script is None:
            raise RuntimedError(
                "uv:pep723 needs a `# /// script` block in the notebook's first code cell",
                code="no_pep723",
            )
        check_python(script.requires_python)
        builder = UvEnvBuilder.create(normalize_specs(script.dependencies), None)
        # Same deps, same env as uv:inline: one hash, one dir, one collector.
        return await self._cached(builder, "uv", env_source=UV_PEP723)

    async def _pyproject(self, pyproject: Path) -> ResolvedEnv:
        deps = await asyncio.to_thread(pyproject_dependencies, pyproject)
        builder = UvEnvBuilder.create(normalize_specs(deps), None)
        key = package_hash("uv", builder.python, builder.packages, extra=str(pyproject))
        return await self._cached(builder, "pyproject", key, UV_PYPROJECT)

    async def _env_yml(self, path: Path) -> ResolvedEnv:
        yml = await asyncio.to_thread(read_environment_yml, path)
        channels = yml.channels or tuple(self._conda_channels())
        if not channels:
            raise RuntimedError(f"{path} names no channels", code="invalid_environment_yml")
        builder = EnvYmlBuilder(self._conda_builder(yml.conda, channels), tuple(sorted(yml.pip)))
        return await self._cached(builder, "envyml", env_source=CONDA_ENV_YML)

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

    async def _project_file(self, env_source: str, notebook_path: str | None) -> Path:
        """The nearest project file ``env_source`` reads (a dummy for other sources)."""
        names = PROJECT_SOURCES.get(env_source)
        if names is None:
            return Path()
        if not notebook_path:
            raise RuntimedError(
                f"{env_source} needs the notebook's path to find its {names[0]}; "
                "open the notebook from a file or pick another env_source",
                code=_NOT_FOUND[env_source],
            )
        start = await asyncio.to_thread(notebook_dir, notebook_path)
        search = await asyncio.to_thread(find_project_file, start, names)
        if search.found is None:
            raise RuntimedError(
                f"no {names[0]} found in {start} or its parents (the search stops at a "
                "directory with .git or at your home directory); add one or pick another "
                "env_source",
                code=_NOT_FOUND[env_source],
            )
        return search.found


_NOT_FOUND = {UV_PYPROJECT: "no_pyproject", CONDA_ENV_YML: "no_environment_yml",
              PIXI_TOML_SOURCE: "no_pixi_toml"}  # fmt: skip


# --- helpers -------------------------------------------------------------------------------


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
