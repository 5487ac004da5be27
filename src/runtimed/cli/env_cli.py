"""`runt env`: the envs on disk, what they cost, and collecting the unused ones."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from runtimed.cli.common import SocketOption, fail, print_json, reporting_errors

env_app = typer.Typer(no_args_is_help=True, help="Environments on disk: list, stats, clean.")


def _client(socket: str | None):  # type: ignore[no-untyped-def]
    from runtimed.client import DaemonClient

    return DaemonClient(socket)


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


def _ago(when: float) -> str:
    days = (time.time() - when) / 86400
    return f"{days:.0f} d ago" if days >= 1 else f"{days * 24:.0f} h ago"


@env_app.command("list")
def env_list(
    socket: SocketOption = None, json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Every env: inline (built from a notebook's dependencies) and pooled."""
    with reporting_errors(), _client(socket) as client:
        disk = client.list_envs()
    if json:
        print_json(disk.envs)
        return
    if not disk.envs:
        typer.echo("no envs on disk")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("env", "kind", "size", "last used", "in use")
    table.columns[0].overflow = "fold"
    for env in disk.envs:
        in_use = "yes" if env.in_use else ""
        table.add_row(env.name, env.kind, _mb(env.size_bytes), _ago(env.last_used_at), in_use)
    Console().print(table)


@env_app.command("stats")
def env_stats(
    socket: SocketOption = None, json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Disk use by kind: envs, stored rooms, blobs."""
    with reporting_errors(), _client(socket) as client:
        disk = client.list_envs()
    kinds: dict[str, list[int]] = {}
    for env in disk.envs:
        kinds.setdefault(env.kind, []).append(env.size_bytes)
    totals = {kind: {"count": len(s), "bytes": sum(s)} for kind, s in sorted(kinds.items())}
    totals["stored rooms"] = {"count": disk.stored_rooms, "bytes": disk.stored_rooms_bytes}
    totals["blobs"] = {"count": disk.blobs, "bytes": disk.blobs_bytes}
    if json:
        print_json(totals)
        return
    for kind, total in totals.items():
        typer.echo(f"{kind:>14}: {total['count']:4d}  {_mb(total['bytes']):>10}")
    typer.echo(f"{'total':>14}:       {_mb(sum(t['bytes'] for t in totals.values())):>10}")


@env_app.command("clean")
def env_clean(
    socket: SocketOption = None,
    all: Annotated[bool, typer.Option("--all", help="Every unused inline env")] = False,
    max_age_days: Annotated[
        float | None, typer.Option(help="Unused for more than N days (default: the setting)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go")] = False,
) -> None:
    """Remove unused inline envs, forgotten rooms and unreferenced blobs (never in use)."""
    if max_age_days is not None and max_age_days < 0:
        fail("--max-age-days must be >= 0")
    with reporting_errors(), _client(socket) as client:
        done = client.clean_envs(all=all, max_age_days=max_age_days, dry_run=dry_run)
    verb = "would remove" if done.dry_run else "removed"
    for env in done.removed_envs:
        typer.echo(f"{verb} {env.name} ({_mb(env.size_bytes)}, last used {_ago(env.last_used_at)})")
    blobs = "" if done.dry_run else f", {done.removed_blobs} blob(s)"
    typer.echo(
        f"{verb} {len(done.removed_envs)} env(s), {done.removed_rooms} stored room(s){blobs}: "
        f"{_mb(done.freed_bytes)}"
    )
