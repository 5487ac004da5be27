"""An EnvBuilder double: "builds" an env in a temp dir at once (or when the test says),
with this interpreter as its python, so a real EnvPool runs in-process with no uv."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtimed.daemon.envs.env_record import package_hash, write_ready_marker
from runtimed.protocol.control import EnvType, PooledEnv


@dataclass
class InstantBuilder:
    """Builds finish at once, or when ``gate`` is set if the test gives one."""

    env_type: EnvType = "uv"
    gate: asyncio.Event | None = None
    built: list[Path] = field(default_factory=list)

    @property
    def packages(self) -> list[str]:
        return ["ipykernel"]

    @property
    def package_hash(self) -> str:
        return package_hash(self.env_type, sys.executable, self.packages)

    def describe(self) -> str:
        return "an in-process test builder"

    async def build(self, prefix: Path, env_id: str, timeout: float) -> PooledEnv:
        prefix.mkdir(parents=True)
        if self.gate is not None:
            await self.gate.wait()
        env = PooledEnv(
            env_type=self.env_type,
            venv_path=str(prefix),
            python_path=sys.executable,
            prewarmed_packages=self.packages,
            env_id=env_id,
            package_hash=self.package_hash,
            created_at=time.time(),
        )
        write_ready_marker(env)
        self.built.append(prefix)
        return env
