"""`runtimed run`: its options, and the start of the daemon.

Start-to-first-pong is dominated by imports, so `runtimed run` parses its options with
argparse (``cli/command_line.py``) and imports only the daemon.
"""

from __future__ import annotations

import argparse
import sys

from runtimed.cli.command_line import bounded_int, flag, opt
from runtimed.cli.common import SOCKET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_COUNT = bounded_int(0)

#: `runtimed run`'s options (the `runtimed` tree in ``daemon_cli`` registers them).
RUN_OPTIONS = [
    SOCKET,
    opt("--cache-dir", help="Cache dir (default ~/.cache/runt)"),
    opt("--config-dir", help="Settings dir (default ~/.config/runt)"),
    opt("--uv-pool-size", type=_COUNT, help="Ready uv envs to keep (setting uv.pool_size, 3)"),
    opt(
        "--conda-pool-size",
        type=_COUNT,
        help="Ready conda envs to keep (setting conda.pool_size, 3)",
    ),
    opt(
        "--kernel-pool-size",
        type=_COUNT,
        help="Started kernels to keep (setting kernel_pool.size, 1)",
    ),
    opt(
        "--conda-channel",
        action="append",
        help="Conda channel name or URL, repeatable, first wins (default conda-forge)",
    ),
    opt("--conda-package", action="append", help="Extra spec for conda envs"),
    opt("--conda-config", help="rattler/pixi config.toml (mirrors, proxy, auth)"),
    opt("--uv-package", action="append", help="Extra package for uv envs"),
    opt("--python", help="Interpreter for uv envs"),
    opt("--take-timeout", type=float, default=60.0, help="Max wait of a take, seconds"),
    opt("--build-timeout", type=float, default=600.0, help="Max time of one env build"),
    opt("--max-env-age", type=float, default=172800, help="Replace envs older than this (s)"),
    opt("--backoff-base", type=float, default=2, help="First retry delay after a failed build"),
    opt(
        "--http-listen",
        help="HTTP server address HOST:PORT, or off (setting http.listen, "
        "127.0.0.1:0: a free loopback port)",
    ),
    opt("--tls-cert", help="TLS certificate (PEM) for the HTTP server"),
    opt("--tls-key", help="TLS private key (PEM)"),
    flag("--insecure-no-tls", help="Allow plain HTTP on a non-loopback address (warns)"),
]


def build_parser() -> argparse.ArgumentParser:
    """`runtimed run`'s parser on its own (what `runtimed run` parses)."""
    parser = argparse.ArgumentParser(prog="runtimed run", allow_abbrev=False)
    for option in RUN_OPTIONS:
        option.add_to(parser)
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
    """Run the daemon in the foreground (logs to stderr and runtimed.log)."""
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
