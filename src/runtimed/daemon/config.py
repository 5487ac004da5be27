"""Daemon configuration, fixed at start (settings sync may later change pool parts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from runtimed.daemon.pool import PoolSettings
from runtimed.paths import RuntimePaths


@dataclass(frozen=True)
class DaemonConfig:
    paths: RuntimePaths
    uv_pool: PoolSettings = field(default_factory=PoolSettings)
    conda_pool: PoolSettings = field(default_factory=lambda: PoolSettings(target=0))
    uv_packages: tuple[str, ...] = ()
    uv_python: str | None = None
    handshake_timeout_secs: float = 10.0
