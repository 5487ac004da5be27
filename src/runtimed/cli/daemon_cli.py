"""`runtimed`: run the daemon in the foreground, ask its status, stop it."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from runtimed.cli.common import SocketOption, fail, print_json, reporting_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The runtimed daemon.")


@app.command()
def run(
    socket: SocketOption = None,
    cache_dir: Annotated[str | None, typer.Option(help="Cache dir (default ~/.cache/runt)")] = None,
    uv_pool_size: Annotated[int, typer.Option(min=0, help="Ready uv envs to keep")] = 3,
    conda_pool_size: Annotated[int, typer.Option(min=0, help="Ready conda envs to keep")] = 0,
    uv_package: Annotated[
        list[str] | None, typer.Option("--uv-package", help="Extra package for uv envs")
    ] = None,
    python: Annotated[str | None, typer.Option(help="Interpreter for uv envs")] = None,
    take_timeout: Annotated[float, typer.Option(help="Max wait of a take, seconds")] = 60.0,
    build_timeout: Annotated[float, typer.Option(help="Max time of one env build")] = 600.0,
    max_env_age: Annotated[float, typer.Option(help="Replace envs older than this (s)")] = 172800,
    backoff_base: Annotated[float, typer.Option(help="First retry delay after a failed build")] = 2,
) -> None:
    """Run the daemon in the foreground (logs to stderr and runtimed.log)."""
    from runtimed.daemon.app import run_daemon
    from runtimed.daemon.config import DaemonConfig
    from runtimed.daemon.pool import PoolSettings
    from runtimed.daemon.singleton import AlreadyRunningError
    from runtimed.paths import RuntimePaths

    def settings(target: int) -> PoolSettings:
        return PoolSettings(target=target, max_age_secs=max_env_age,
                            build_timeout_secs=build_timeout, take_timeout_secs=take_timeout,
                            backoff_base_secs=backoff_base)  # fmt: skip

    config = DaemonConfig(
        paths=RuntimePaths.resolve(cache_dir, socket),
        uv_pool=settings(uv_pool_size),
        conda_pool=settings(conda_pool_size),
        uv_packages=tuple(uv_package or ()),
        uv_python=python,
    )
    try:
        run_daemon(config)
    except AlreadyRunningError as exc:
        fail(exc.message)


@app.command()
def status(socket: SocketOption = None, json: bool = typer.Option(False, "--json")) -> None:
    """Show whether the daemon runs, its pid, version, socket and pools."""
    from runtimed.client import DaemonClient

    with reporting_errors(), DaemonClient(socket) as client:
        info = client.daemon_info()
        pools = client.status()
    if json:
        print_json({"daemon": info, "status": pools})
        return
    uptime = time.time() - info.started_at
    typer.echo(f"runtimed {info.version} running, pid {info.pid}, up {uptime:.0f} s")
    typer.echo(f"socket:    {info.socket_path}\ncache dir: {info.cache_dir}")
    for name, pool in pools.pools.items():
        line = f"{name} pool:   {pool.available} ready, {pool.warming} warming, target {pool.target}"
        typer.echo(line + (f"  (error: {pool.error.message.splitlines()[-1]})" if pool.error else ""))


@app.command()
def stop(socket: SocketOption = None) -> None:
    """Stop the running daemon."""
    from runtimed.client import DaemonClient

    with reporting_errors():
        client = DaemonClient(socket)
        pid = client.daemon_info().pid
        client.shutdown()
    typer.echo(f"stopped runtimed (pid {pid})")


def main() -> None:
    app()
