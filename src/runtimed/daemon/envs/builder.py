"""What a pool needs from a builder: the uv and conda builders both satisfy it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from runtimed.protocol.control import EnvType, PooledEnv


class EnvBuilder(Protocol):
    """Builds one environment into a given prefix. Raises BuildFailure on failure."""

    @property
    def env_type(self) -> EnvType: ...

    @property
    def packages(self) -> list[str]: ...

    @property
    def package_hash(self) -> str: ...

    def describe(self) -> str: ...

    async def build(self, prefix: Path, env_id: str, timeout: float) -> PooledEnv: ...
