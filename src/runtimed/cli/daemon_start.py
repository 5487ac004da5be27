"""`runtimed run`: its options parsed with argparse, and the start of the daemon.

Importing typer (and click) costs about as much as the rest of the daemon's start, so the
hot path, `runtimed run ...`, is parsed here without it. The options mirror
`daemon_cli.run` one for one: tests/test_cli.py checks that they agree.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """`runtimed run` options: same names, defaults and meaning as ``daemon_cli.run``."""
    parser = argparse.ArgumentParser(prog="runtimed run", allow_abbrev=False)
    add = parser.add_argument
    add("--socket", default=None)
    add("--cache-dir", default=None)
    add("--config-dir", default=None)
    add("--uv-pool-size", type=_non_negative_int, default=None)
    add("--conda-pool-size", type=_non_negative_int, default=None)
    add("--kernel-pool-size", type=_non_negative_int, default=None)
    add("--conda-channel", action="append", default=None)
    add("--conda-package", action="append", default=None)
    add("--conda-config", default=None)
    add("--uv-package", action="append", default=None)
    add("--python", default=None)
    add("--take-timeout", type=float, default=60.0)
    add("--build-timeout", type=float, default=600.0)
    add("--max-env-age", type=float, default=172800)
    add("--backoff-base", type=float, default=2)
    add("--http-listen", default=None)
    add("--tls-cert", default=None)
    add("--tls-key", default=None)
    add("--insecure-no-tls", action="store_true", default=False)
    return parser


def settings_overrides(o: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, as dotted settings keys (absent flags: None)."""
    flags = {
        "uv.pool_size": o.uv_pool_size,
        "conda.pool_size": o.conda_pool_size,
        "kernel_pool.size": o.kernel_pool_size,
        "uv.default_packages": o.uv_package,
        "uv.python": o.python,
        "conda.default_packages": o.conda_package,
        "conda.channels": o.conda_channel,
        "http.listen": o.http_listen,
    }
    return {key: value for key, value in flags.items() if value is not None}


def start(**options: Any) -> None:
    """Build the daemon's config from `run` options and serve until stopped."""
    from pathlib import Path

    from runtimed.daemon.app import run_daemon
    from runtimed.daemon.config import DaemonConfig
    from runtimed.daemon.envs import PoolSettings
    from runtimed.errors import RuntimedError
    from runtimed.paths import RuntimePaths, default_config_dir

    o = argparse.Namespace(**options)
    config = DaemonConfig(
        paths=RuntimePaths.resolve(o.cache_dir, o.socket),
        pool=PoolSettings(
            max_age_secs=o.max_env_age,
            build_timeout_secs=o.build_timeout,
            take_timeout_secs=o.take_timeout,
            backoff_base_secs=o.backoff_base,
        ),
        config_dir=Path(o.config_dir).expanduser().absolute()
        if o.config_dir
        else default_config_dir(),
        settings_overrides=settings_overrides(o),
        conda_config_file=o.conda_config,
        tls_cert=_absolute(o.tls_cert),
        tls_key=_absolute(o.tls_key),
        insecure_no_tls=o.insecure_no_tls,
    )
    try:
        if o.http_listen is not None:  # a bad setting falls back to its default; a flag fails
            from runtimed.daemon.http.listen import parse_listen

            parse_listen(o.http_listen)
        run_daemon(config)
    except RuntimedError as exc:  # already running, socket in use, ...: one line, exit 1
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None


def _absolute(path: str | None) -> str | None:
    """A path given on the command line, made absolute (the daemon may chdir)."""
    import os

    return os.path.abspath(os.path.expanduser(path)) if path else None
