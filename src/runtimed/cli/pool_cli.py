"""`runt pool ...`, `runt rooms`, `runt config ...`, `runt mcp`: the handlers.

The question-and-answer commands (ping, status, rooms) use ``ControlClient`` (standard
library only); the others the typed ``DaemonClient``.
"""

from __future__ import annotations

import time

from runtimed.cli.common import echo, fail, one_line, print_json, reporting_errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtimed.client.daemon_client import DaemonClient
    from runtimed.client.settings_client import SettingsClient


def _client(socket: str | None) -> DaemonClient:
    from runtimed.client import DaemonClient

    return DaemonClient(socket)


def ping(socket: str | None) -> None:
    """Check that the daemon answers; prints its versions and the round trip."""
    from runtimed.client.control_client import ControlClient

    with reporting_errors(), ControlClient(socket) as client:
        started = time.perf_counter()
        pong = client.ping()
        elapsed = (time.perf_counter() - started) * 1000
    echo(
        f"pong: daemon {pong['daemon_version']}, protocol {pong['protocol_version']}, "
        f"{elapsed:.1f} ms"
    )


def status(socket: str | None, json: bool) -> None:
    """Available / warming / target / error for each pool."""
    from runtimed.cli.text_table import TextTable, print_table
    from runtimed.client.control_client import ControlClient

    with reporting_errors(), ControlClient(socket) as client:
        reply = client.status()
    if json:
        print_json(reply)
        return
    # The error column shows one short line; `--json` has the whole message.
    table = TextTable("pool", "available", "warming", "target", "error")
    pools = reply["pools"]
    for name, pool in pools.items():
        error: str | tuple[str, str | None] = ""
        if (err := pool.get("error")) is not None:
            retry = max(err["retry_at"] - time.time(), 0)
            error = (
                f"{err['kind']}: {one_line(err['message'], 48)} "
                f"(try {err['attempts']}, next in {retry:.0f} s)",
                "red",
            )
        table.add_row(
            name, str(pool["available"]), str(pool["warming"]), str(pool["target"]), error
        )
    kernels = reply.get("kernels")
    if kernels is not None:
        error = (one_line(kernels["error"], 56), "red") if kernels.get("error") else ""
        row = (str(kernels["available"]), str(kernels["warming"]), str(kernels["target"]), error)
        table.add_row(f"kernels ({kernels['env_source']})", *row)
    print_table(table)
    if any(pool.get("error") is not None for pool in pools.values()):
        echo("full errors: runt pool status --json")


def take(env_type: str, socket: str | None, timeout: float | None) -> None:
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


def return_env(path: str, socket: str | None) -> None:
    """Give an unused env back to its pool."""
    import os

    path = os.path.abspath(os.path.expanduser(path))  # the daemon's cwd is not ours
    with reporting_errors(), _client(socket) as client:
        outcome = client.return_env(path)
    echo(f"{outcome}: {path}")


def flush(socket: str | None) -> None:
    """Rebuild every pooled env."""
    with reporting_errors(), _client(socket) as client:
        client.flush_pool()
    echo("flushed: pools are rebuilding")


def shutdown(socket: str | None) -> None:
    """Stop the daemon."""
    with reporting_errors(), _client(socket) as client:
        client.shutdown()
    echo("daemon shutting down")


def rooms(socket: str | None, json: bool) -> None:
    """Open notebook rooms: id, file, peers, kernel."""
    from runtimed.client.control_client import ControlClient

    with reporting_errors(), ControlClient(socket) as client:
        found = client.list_rooms()
    if json:
        print_json(found)
        return
    if not found:
        echo("no open rooms")
        return
    from runtimed.cli.text_table import TextTable, print_table

    # Ids and paths wrap rather than being cut: two rooms must never look the same.
    table = TextTable("notebook", "path", "peers", "kernel")
    for room in found:
        kernel = (room.get("kernel_status") or "yes") if room["has_kernel"] else "-"
        table.add_row(room["notebook_id"], room["path"] or "-", str(room["active_peers"]), kernel)
    print_table(table)


def _settings(socket: str | None) -> SettingsClient:
    from runtimed.client.settings_client import SettingsClient

    return SettingsClient(socket)


def config_show(socket: str | None) -> None:
    """Print every setting as JSON."""
    with reporting_errors(), _settings(socket) as client:
        print_json(client.get_all())


def config_get(key: str, socket: str | None) -> None:
    """Print one setting (dotted key, e.g. uv.pool_size)."""
    with reporting_errors(), _settings(socket) as client:
        print_json(client.get(key))


def config_set(key: str, value: str, socket: str | None) -> None:
    """Change a setting; it is validated, saved, and takes effect at once."""
    from runtimed.documents.settings import parse_cli_value

    with reporting_errors(), _settings(socket) as client:
        stored = client.set(key, parse_cli_value(value))
    echo(f"{key} = {stored!r}" if not isinstance(stored, list | dict) else f"{key} set")


def mcp(socket: str | None, http: bool, port: int, token: str | None) -> None:
    """Serve MCP for AI agents: they open, edit and run the same live notebooks as you.

    Host config: {"mcpServers": {"runtimed": {"command": "runt", "args": ["mcp"]}}}
    """
    # Imported here: the MCP SDK takes a second to import, and `runt` must start fast.
    from runtimed.mcp_server import serve

    try:
        serve(socket, http=http, port=port, token=token)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except OSError as exc:  # e.g. the --http port is taken
        fail(f"runt mcp: {exc}")


def completion(shell: str) -> None:
    """Print a completion script for SHELL (bash, zsh or fish).

    bash:  runt completion bash > ~/.local/share/bash-completion/completions/runt
    zsh:   runt completion zsh > "${fpath[1]}/_runt"
    fish:  runt completion fish > ~/.config/fish/completions/runt.fish
    """
    from runtimed.cli.completion import script
    from runtimed.cli.runt_cli import runt

    print(script(runt, shell), end="")
