"""What a pool finds on disk when it starts: ready envs it can hand out again, envs of an
older package set (kept until their replacements are ready), and the rest, removed."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtimed.daemon.envs.builder import EnvBuilder
from runtimed.daemon.envs.env_record import (
    parse_env_dir_name,
    python_runs,
    read_ready_marker,
    remove_env_dir,
    taken_at,
)
from runtimed.protocol.control import PooledEnv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adoption:
    """The envs a starting pool takes over: ``ready`` to hand out, ``stale`` to replace."""

    ready: list[PooledEnv] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)


async def adopt_existing(
    envs_dir: Path, builder: EnvBuilder, target: int, max_age_secs: float
) -> Adoption:
    """Sort this pool's dirs under ``envs_dir``: keep up to ``target`` ready envs whose
    python still runs, note mismatched ones as stale, remove half-built and old ones."""
    candidates: list[tuple[Path, PooledEnv]] = []
    adoption = Adoption()
    now = time.time()
    for prefix in sorted(envs_dir.iterdir()):
        if not prefix.name.startswith(f"runtimed-{builder.env_type}-"):
            continue
        verdict = _classify(prefix, builder, now, max_age_secs)
        if isinstance(verdict, PooledEnv):
            candidates.append((prefix, verdict))
        elif verdict == "stale":
            adoption.stale.append(prefix)
        elif verdict == "remove":
            log.info("removing %s (half-built, orphaned or too old)", prefix.name)
            await asyncio.to_thread(remove_env_dir, prefix)
    runs = await asyncio.gather(*(python_runs(env.python_path) for _, env in candidates))
    for (prefix, env), ok in zip(candidates, runs, strict=True):
        if ok:
            adoption.ready.append(env)
        else:
            log.info("removing %s: its python no longer runs", prefix.name)
            await asyncio.to_thread(remove_env_dir, prefix)
    while len(adoption.ready) > target:
        await asyncio.to_thread(remove_env_dir, Path(adoption.ready.pop().venv_path))
    if target <= 0:  # no replacement will come: drop mismatched envs now
        while adoption.stale:
            await asyncio.to_thread(remove_env_dir, adoption.stale.pop())
    log.info(
        "%s pool: reused %d ready env(s), %d stale",
        builder.env_type,
        len(adoption.ready),
        len(adoption.stale),
    )
    return adoption


def _classify(
    prefix: Path, builder: EnvBuilder, now: float, max_age_secs: float
) -> PooledEnv | str:
    """A reusable env, or what to do with the directory: keep / stale / remove."""
    if parse_env_dir_name(prefix.name, builder.env_type) is None:
        return "remove"
    taken = taken_at(prefix)
    if taken is not None:  # someone owns it; collect it only once abandoned
        return "remove" if now - taken > max_age_secs else "keep"
    env = read_ready_marker(prefix)
    if env is None or env.venv_path != str(prefix):
        return "remove"
    if now - env.created_at > max_age_secs:
        return "remove"
    if env.package_hash != builder.package_hash:
        return "stale"
    return env
