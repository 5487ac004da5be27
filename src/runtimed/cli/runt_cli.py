"""`runt`: the command line for pools (and, later, notebooks and kernels)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from runtimed.cli.common import (
    SocketOption,
    TokenFileOption,
    UrlOption,
    fail,
    one_line,
    one_line_warnings,
    print_json,
    reporting_errors,
    use_remote_daemon,
    version_callback,
)
from runtimed.cli.daemon_admin import daemon_app
from runtimed.cli.env_cli import env_app
from runtimed.cli.history_cli import register as register_history
from runtimed.cli.runtime_cli import register as register_runtimes

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Drive the runtimed daemon.")


@app.callback()
def _main(
    version: Annotated[bool, version_callback("runt")] = False,
    url: UrlOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Drive the runtimed daemon: pools, rooms, settings."""
    use_remote_daemon(url, token_file)


pool_app = typer.Typer(no_args_is_help=True, help="Prewarmed environment pools.")
app.add_typer(pool_app, name="pool")
config_app = typer.Typer(no_args_is_help=True, help="Daemon settings (synced to every client).")
app.add_typer(config_app, name="config")
app.add_typer(env_app, name="env")
register_runtimes(app)  # ps, start, kill, interrupt, restart
register_history(app)  # history, export
app.add_typer(daemon_app, name="daemon")


def _client(socket: str | None):  # type: ignore[no-untyped-def]
    from runtimed.client import DaemonClient

    return DaemonClient(socket)


@pool_app.command("ping")
def pool_ping(socket: SocketOption = None) -> None:
    """Check that the daemon answers; prints its versions and the round trip."""
    with reporting_errors(), _client(socket) as client:
        started = time.perf_counter()
        pong = client.ping()
        elapsed = (time.perf_counter() - started) * 1000
    typer.echo(
        f"pong: daemon {pong.daemon_version}, protocol {pong.protocol_version}, {elapsed:.1f} ms"
    )


@pool_app.command("status")
def pool_status(
    socket: SocketOption = None, json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Available / warming / target / error for each pool."""
    with reporting_errors(), _client(socket) as client:
        status = client.status()
    if json:
        print_json(status)
        return
    from rich.console import Console
    from rich.table import Table

    # The error column shows one short line; `--json` has the whole message.
    table = Table("pool", "available", "warming", "target", "error")
    for name, pool in status.pools.items():
        error = ""
        if pool.error is not None:
            retry = max(pool.error.retry_at - time.time(), 0)
            error = (
                f"[red]{pool.error.kind}[/red]: {one_line(pool.error.message, 48)} "
                f"(try {pool.error.attempts}, next in {retry:.0f} s)"
            )
        table.add_row(name, str(pool.available), str(pool.warming), str(pool.target), error)
    kernels = status.kernels
    if kernels is not None:
        error = f"[red]{one_line(kernels.error, 56)}[/red]" if kernels.error else ""
        row = (str(kernels.available), str(kernels.warming), str(kernels.target), error)
        table.add_row(f"kernels ({kernels.env_source})", *row)
    Console().print(table)
    if any(pool.error is not None for pool in status.pools.values()):
        typer.echo("full errors: runt pool status --json")


@pool_app.command("take")
def pool_take(
    env_type: Annotated[str, typer.Argument(help="uv or conda")] = "uv",
    socket: SocketOption = None,
    timeout: Annotated[float | None, typer.Option(help="Max wait for a ready env (s)")] = None,
) -> None:
    """Take a prewarmed env (it is yours now); prints it as JSON."""
    if env_type not in ("uv", "conda"):
        fail(f"unknown env type {env_type!r}: use uv or conda")
    with reporting_errors(), _client(socket) as client:
        env = client.take(env_type, timeout)
    if env is None:
        fail(f"no {env_type} env became ready in time; see `runt pool status`")
    print_json(
        {
            "env_type": env.env_type,
            "venv_path": env.venv_path,
            "python_path": env.python_path,
            "prewarmed_packages": env.prewarmed_packages,
        }
    )


@pool_app.command("return")
def pool_return(
    path: Annotated[str, typer.Argument(help="venv_path of an env you took")],
    socket: SocketOption = None,
) -> None:
    """Give an unused env back to its pool."""
    from pathlib import Path

    path = str(Path(path).expanduser().absolute())  # the daemon's cwd is not ours
    with reporting_errors(), _client(socket) as client:
        outcome = client.return_env(path)
    typer.echo(f"{outcome}: {path}")


@pool_app.command("flush")
def pool_flush(socket: SocketOption = None) -> None:
    """Rebuild every pooled env."""
    with reporting_errors(), _client(socket) as client:
        client.flush_pool()
    typer.echo("flushed: pools are rebuilding")


@pool_app.command("shutdown")
def pool_shutdown(socket: SocketOption = None) -> None:
    """Stop the daemon."""
    with reporting_errors(), _client(socket) as client:
        client.shutdown()
    typer.echo("daemon shutting down")


@app.command("rooms")
def rooms(
    socket: SocketOption = None, json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Open notebook rooms: id, file, peers, kernel."""
    with reporting_errors(), _client(socket) as client:
        found = client.list_rooms()
    if json:
        print_json(found)
        return
    if not found:
        typer.echo("no open rooms")
        return
    from rich.console import Console
    from rich.table import Table

    # Ids and paths wrap rather than being cut: two rooms must never look the same.
    table = Table("notebook", "path", "peers", "kernel")
    table.columns[0].overflow = table.columns[1].overflow = "fold"
    for room in found:
        kernel = (room.kernel_status or "yes") if room.has_kernel else "-"
        table.add_row(room.notebook_id, room.path or "-", str(room.active_peers), kernel)
    Console().print(table)


def _settings(socket: str | None):  # type: ignore[no-untyped-def]
    from runtimed.client.settings_client import SettingsClient

    return SettingsClient(socket)


@config_app.command("show")
def config_show(socket: SocketOption = None) -> None:
    """Print every setting as JSON."""
    with reporting_errors(), _settings(socket) as client:
        print_json(client.get_all())


@config_app.command("get")
def config_get(key: str, socket: SocketOption = None) -> None:
    """Print one setting (dotted key, e.g. uv.pool_size)."""
    with reporting_errors(), _settings(socket) as client:
        print_json(client.get(key))


@config_app.command("set", context_settings={"ignore_unknown_options": True})
def config_set(
    key: str,
    value: Annotated[str, typer.Argument(help='JSON (5, true, ["numpy"]) or plain text')],
    socket: SocketOption = None,
) -> None:
    """Change a setting; it is validated, saved, and takes effect at once."""
    from runtimed.documents.settings import parse_cli_value

    with reporting_errors(), _settings(socket) as client:
        stored = client.set(key, parse_cli_value(value))
    typer.echo(f"{key} = {stored!r}" if not isinstance(stored, list | dict) else f"{key} set")


@app.command("mcp")
def mcp(
    socket: SocketOption = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1 instead of stdio")
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --http", min=1, max=65535)] = 39218,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RUNTIMED_MCP_TOKEN",
            show_envvar=True,
            help="Bearer token --http requires (default: a random one, printed on stderr)",
        ),
    ] = None,
) -> None:
    """Serve MCP for AI agents: they open, edit and run the same live notebooks as you.

    Host config: {"mcpServers": {"runtimed": {"command": "runt", "args": ["mcp"]}}}
    """
    # Imported here: the MCP SDK takes a second to import, and `runt` must start fast.
    from runtimed.mcp_server import serve

    try:
        serve(socket, http=http, port=port, token=token)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except OSError as exc:  # e.g. the --http port is taken
        fail(f"runt mcp: {exc}")


def main() -> None:
    one_line_warnings()
    app()


if __name__ == "__main__":
    main()
