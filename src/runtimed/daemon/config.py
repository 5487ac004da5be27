"""Daemon configuration, fixed at start (settings sync may later change pool parts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtimed.daemon.pool import PoolSettings
from runtimed.paths import RuntimePaths, default_config_dir


@dataclass(frozen=True)
class DaemonConfig:
    paths: RuntimePaths
    uv_pool: PoolSettings = field(default_factory=PoolSettings)
    conda_pool: PoolSettings = field(default_factory=lambda: PoolSettings(target=0))
    uv_packages: tuple[str, ...] = ()
    uv_python: str | None = None
    #: Extra conda specs on top of python, ipykernel, ipywidgets (e.g. "gdal", "python=3.12").
    conda_packages: tuple[str, ...] = ()
    #: Channel names or URLs, highest priority first (a mirror is just another URL).
    conda_channels: tuple[str, ...] = ("conda-forge",)
    #: Optional rattler/pixi config.toml: mirrors, proxies, TLS, auth for conda downloads.
    conda_config_file: str | None = None
    handshake_timeout_secs: float = 10.0
    #: Where settings.json lives (default: the platform config dir, `$RUNTIMED_CONFIG_DIR`).
    config_dir: Path = field(default_factory=default_config_dir)
    #: Settings given on the command line for this run only (dotted keys).
    settings_overrides: dict[str, Any] = field(default_factory=dict)
