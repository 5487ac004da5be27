"""An EnvBuilder double: "builds" an env in a temp dir, with this interpreter as its
python, so a real EnvPool runs in-process with no uv. A build finishes at once, or when
the test sets ``finish``; a cancelled build may take ``stop_secs`` to clean up, like a
build step whose process group is being killed."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtimed.daemon.envs.env_record import package_hash, write_ready_marker
from runtimed.protocol.control import EnvType, PooledEnv


@dataclass
class BuilderDouble:
    env_type: EnvType = "uv"
    #: Builds wait for it when given; None: they finish at once.
    finish: asyncio.Event | None = None
    stop_secs: float = 0.0
    started: list[Path] = field(default_factory=list)
    built: list[Path] = field(default_factory=list)
    build_started: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

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
        self.started.append(prefix)
        self.build_started.set()
        try:
            if self.finish is not None:
                await self.finish.wait()
        except asyncio.CancelledError:
            self.stopping.set()
            await asyncio.sleep(self.stop_secs)
            raise
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
