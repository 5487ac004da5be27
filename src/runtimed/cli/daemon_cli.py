"""`runtimed`: run the daemon in the foreground, ask its status, stop it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from runtimed.cli.common import (
    SocketOption,
    one_line,
    one_line_warnings,
    print_json,
    reporting_errors,
    stop_daemon,
    version_callback,
)

if TYPE_CHECKING:
    from runtimed.service.install import Report

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The runtimed daemon.")


@app.callback()
def _main(version: Annotated[bool, version_callback("runtimed")] = False) -> None:
    """The runtimed daemon: run it, ask its status, stop it, install it as a service."""


@app.command()
def run(
    socket: SocketOption = None,
    cache_dir: Annotated[str | None, typer.Option(help="Cache dir (default ~/.cache/runt)")] = None,
    config_dir: Annotated[
        str | None, typer.Option(help="Settings dir (default ~/.config/runt)")
    ] = None,
    uv_pool_size: Annotated[
        int | None, typer.Option(min=0, help="Ready uv envs to keep (setting uv.pool_size, 3)")
    ] = None,
    conda_pool_size: Annotated[
        int | None,
        typer.Option(min=0, help="Ready conda envs to keep (setting conda.pool_size, 3)"),
    ] = None,
    kernel_pool_size: Annotated[
        int | None,
        typer.Option(min=0, help="Started kernels to keep (setting kernel_pool.size, 1)"),
    ] = None,
    conda_channel: Annotated[
        list[str] | None,
        typer.Option(
            "--conda-channel",
            help="Conda channel name or URL, repeatable, first wins (default conda-forge)",
        ),
    ] = None,
    conda_package: Annotated[
        list[str] | None, typer.Option("--conda-package", help="Extra spec for conda envs")
    ] = None,
    conda_config: Annotated[
        str | None, typer.Option(help="rattler/pixi config.toml (mirrors, proxy, auth)")
    ] = None,
    uv_package: Annotated[
        list[str] | None, typer.Option("--uv-package", help="Extra package for uv envs")
    ] = None,
    python: Annotated[str | None, typer.Option(help="Interpreter for uv envs")] = None,
    take_timeout: Annotated[float, typer.Option(help="Max wait of a take, seconds")] = 60.0,
    build_timeout: Annotated[float, typer.Option(help="Max time of one env build")] = 600.0,
    max_env_age: Annotated[float, typer.Option(help="Replace envs older than this (s)")] = 172800,
    backoff_base: Annotated[float, typer.Option(help="First retry delay after a failed build")] = 2,
    http_listen: Annotated[
        str | None,
        typer.Option(
            help="HTTP server address HOST:PORT, or off (setting http.listen, "
            "127.0.0.1:0: a free loopback port)"
        ),
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option(help="TLS certificate (PEM) for the HTTP server")
    ] = None,
    tls_key: Annotated[str | None, typer.Option(help="TLS private key (PEM)")] = None,
    insecure_no_tls: Annotated[
        bool,
        typer.Option(
            "--insecure-no-tls", help="Allow plain HTTP on a non-loopback address (warns)"
        ),
    ] = False,
) -> None:
    """Run the daemon in the foreground (logs to stderr and runtimed.log)."""
    # `runtimed run` normally never gets here: daemon_start parses it without typer (start
    # time). This is the same start, for `runtimed run` invoked through the typer app.
    from runtimed.cli.daemon_start import start

    start(**locals())


@app.command()
def status(socket: SocketOption = None, json: bool = typer.Option(False, "--json")) -> None:
    """Show whether the daemon runs, its pid, version, socket and pools."""
    from runtimed.client import DaemonClient
    from runtimed.errors import DaemonNotRunningError

    if json:
        try:
            with DaemonClient(socket, autostart=False) as client:
                info, pools = client.daemon_info(), client.status()
        except DaemonNotRunningError as exc:
            print_json({"running": False, "error": exc.message, "code": exc.code})
            raise typer.Exit(2) from None
        print_json({"running": True, "http_url": info.http_url, "daemon": info, "status": pools})
        return
    with reporting_errors(), DaemonClient(socket, autostart=False) as client:
        info = client.daemon_info()
        pools = client.status()
    if json:
        print_json({"daemon": info, "status": pools})
        return
    uptime = time.time() - info.started_at
    typer.echo(f"runtimed {info.version} running, pid {info.pid}, up {uptime:.0f} s")
    typer.echo(f"socket:    {info.socket_path}\ncache dir: {info.cache_dir}")
    if info.blob_port:
        typer.echo(f"blobs:     http://127.0.0.1:{info.blob_port}/blob/<sha256>")
    if info.http_url:
        typer.echo(f"http:      {info.http_url}  (token: runtimed token path)")
    for name, pool in pools.pools.items():
        line = f"{name} pool:   {pool.available} ready, {pool.warming} warming"
        line += f", target {pool.target}"
        if pool.error:
            line += f"  (error: {one_line(pool.error.message, 80)})"
        typer.echo(line)


token_app = typer.Typer(
    no_args_is_help=True,
    help="The HTTP server's token (<cache dir>/http-token): show where, rotate, log a browser in.",
)
app.add_typer(token_app, name="token")
CacheDirOption = Annotated[
    str | None, typer.Option(help="The daemon's cache dir (default ~/.cache/runt)")
]


@token_app.command("path")
def token_path(cache_dir: CacheDirOption = None) -> None:
    """Print the path of the token file (send its content as 'Authorization: Bearer')."""
    from runtimed.daemon.http.tokens import token_file
    from runtimed.paths import RuntimePaths

    typer.echo(str(token_file(RuntimePaths.resolve(cache_dir).cache_dir)))


@token_app.command("rotate")
def token_rotate(cache_dir: CacheDirOption = None) -> None:
    """Write a new token: the old one, its cookies and login links stop working at once
    (a running daemon picks the new one up without a restart)."""
    from runtimed.daemon.http.tokens import token_file, write_new_token
    from runtimed.paths import RuntimePaths, ensure_private_dir

    path = token_file(ensure_private_dir(RuntimePaths.resolve(cache_dir).cache_dir))
    write_new_token(path)
    typer.echo(f"new token in {path}")


@token_app.command("login-url")
def token_login_url(socket: SocketOption = None) -> None:
    """Print a one-time login link for a browser (valid 60 s, once): it sets a session
    cookie, so the token itself never goes in a URL."""
    from pathlib import Path

    from runtimed.client import DaemonClient
    from runtimed.daemon.http.tokens import mint_login_code, read_token, token_file
    from runtimed.errors import RuntimedError

    with reporting_errors():
        with DaemonClient(socket, autostart=False) as client:
            info = client.daemon_info()
        if not info.http_url:
            raise RuntimedError("the daemon's HTTP server is off (--http-listen off)", "http_off")
        token = read_token(token_file(Path(info.cache_dir)))
        if token is None:
            raise RuntimedError(f"no token in {info.cache_dir}; is this the daemon's user?")
    typer.echo(f"{info.http_url}/login?code={mint_login_code(token)}")


@app.command()
def stop(socket: SocketOption = None) -> None:
    """Stop the running daemon (returns once it has exited)."""
    pid = stop_daemon(socket)
    typer.echo(f"stopped runtimed (pid {pid})")


@app.command()
def install(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be written where; write nothing")
    ] = False,
) -> None:
    """Start runtimed with your session: write and enable the user service.

    A systemd user unit (Linux), a launchd agent (macOS) or a Startup-folder entry
    (Windows), running this Python's runtimed with this shell's RUNTIMED_* variables."""
    from runtimed.service.install import current_manager
    from runtimed.service.install import install as install_service
    from runtimed.service.units import ServiceSpec

    with reporting_errors():
        report = install_service(current_manager(), ServiceSpec.current(), dry_run)
    _print_report(report)


@app.command()
def uninstall() -> None:
    """Stop and disable the user service and remove its file (none installed: no error)."""
    from runtimed.service.install import current_manager
    from runtimed.service.install import uninstall as uninstall_service

    with reporting_errors():
        report = uninstall_service(current_manager())
    _print_report(report)


def _print_report(report: Report) -> None:
    """Progress on stdout, warnings and errors on stderr; exit 1 after an error."""
    for level, text in report.lines:
        if level == "info":
            typer.echo(text)
        else:
            typer.echo(f"{level}: {text}", err=True)
    if report.failed:
        raise typer.Exit(1)


def main() -> None:
    one_line_warnings()
    app()
