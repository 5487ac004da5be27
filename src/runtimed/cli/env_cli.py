"""`runt env`: the envs on disk, what they cost, and collecting the unused ones."""

from __future__ import annotations

import time

from runtimed.cli.common import echo, fail, print_json, reporting_errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtimed.client.daemon_client import DaemonClient


def _client(socket: str | None) -> DaemonClient:
    from runtimed.client import DaemonClient

    return DaemonClient(socket)


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


def _ago(when: float) -> str:
    days = (time.time() - when) / 86400
    return f"{days:.0f} d ago" if days >= 1 else f"{days * 24:.0f} h ago"


def env_list(socket: str | None, json: bool) -> None:
    """Every env: inline (built from a notebook's dependencies) and pooled."""
    with reporting_errors(), _client(socket) as client:
        disk = client.list_envs()
    if json:
        print_json(disk.envs)
        return
    if not disk.envs:
        echo("no envs on disk")
        return
    from runtimed.cli.text_table import TextTable, print_table

    table = TextTable("env", "kind", "size", "last used", "in use")
    for env in disk.envs:
        in_use = "yes" if env.in_use else ""
        table.add_row(env.name, env.kind, _mb(env.size_bytes), _ago(env.last_used_at), in_use)
    print_table(table)


def env_stats(socket: str | None, json: bool) -> None:
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
        echo(f"{kind:>14}: {total['count']:4d}  {_mb(total['bytes']):>10}")
    echo(f"{'total':>14}:       {_mb(sum(t['bytes'] for t in totals.values())):>10}")


def env_clean(socket: str | None, all: bool, max_age_days: float | None, dry_run: bool) -> None:
    """Remove unused inline envs, forgotten rooms and unreferenced blobs (never in use)."""
    if max_age_days is not None and max_age_days < 0:
        fail("--max-age-days must be >= 0")
    with reporting_errors(), _client(socket) as client:
        done = client.clean_envs(all=all, max_age_days=max_age_days, dry_run=dry_run)
    verb = "would remove" if done.dry_run else "removed"
    for env in done.removed_envs:
        echo(f"{verb} {env.name} ({_mb(env.size_bytes)}, last used {_ago(env.last_used_at)})")
    blobs = "" if done.dry_run else f", {done.removed_blobs} blob(s)"
    echo(
        f"{verb} {len(done.removed_envs)} env(s), {done.removed_rooms} stored room(s){blobs}: "
        f"{_mb(done.freed_bytes)}"
    )
