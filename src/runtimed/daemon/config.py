"""Daemon configuration, fixed at start. Pool sizes and packages live in the settings
(defaults <- settings.json <- ``settings_overrides`` from the command line) and may change
while the daemon runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtimed.daemon.envs import PoolSettings
from runtimed.paths import RuntimePaths, default_config_dir


@dataclass(frozen=True)
class DaemonConfig:
    paths: RuntimePaths
    #: Timeouts, backoff and max age shared by every pool (targets come from settings).
    pool: PoolSettings = field(default_factory=PoolSettings)
    #: Where settings.json lives (default: the platform config dir, `$RUNTIMED_CONFIG_DIR`).
    config_dir: Path = field(default_factory=default_config_dir)
    #: Settings given on the command line for this run only (dotted keys, e.g.
    #: ``{"uv.pool_size": 1, "conda.channels": ["file:///srv/channel"]}``).
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    #: Optional rattler/pixi config.toml: mirrors, proxies, TLS, auth for conda downloads.
    conda_config_file: str | None = None
    handshake_timeout_secs: float = 10.0
    #: TLS for the HTTP server (both or neither); its address is the setting http.listen.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Plain HTTP on a non-loopback address, on purpose (logged as a warning).
    insecure_no_tls: bool = False
