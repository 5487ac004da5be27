"""DiskKeeper: what runtimed keeps on disk, and collecting what nobody needs.

Inline envs (over their age, count and disk limits), stored rooms of untitled notebooks
and of files that are gone (after a grace period), then the blobs only they referred
to. Runs every ``interval`` seconds and on request (`runt env clean`); nothing in use is
ever removed: envs kernels run in, open rooms, blobs a document mentions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from runtimed.daemon.envs import EnvPool
from runtimed.daemon.envs.inline_envs import InlineEnvLimits, InlineEnvs, dir_size, usage_of
from runtimed.daemon.rooms.room_files import prunable, remove_room_files, stored_rooms
from runtimed.protocol.control import CleanEnvs, CleanReply, DiskReply, EnvUsage

log = logging.getLogger(__name__)

DAY = 86400.0
GC_INTERVAL_SECS = 3600.0


class DiskKeeper:
    def __init__(
        self,
        inline: InlineEnvs,
        pools: Mapping[str, EnvPool],
        docs_dir: Path,
        blobs_dir: Path,
        open_rooms: Callable[[], set[str]],
        collect_blobs: Callable[[], Awaitable[list[str]]],
        setting: Callable[[str], Any],
    ) -> None:
        self.inline = inline
        self.pools = pools
        self.docs_dir = docs_dir
        self.blobs_dir = blobs_dir
        self.open_rooms = open_rooms
        self.collect_blobs = collect_blobs
        self.setting = setting
        self._lock = asyncio.Lock()

    def limits(self, max_age_days: float | None = None) -> InlineEnvLimits:
        age = self.setting("gc.inline_env_max_age_days") if max_age_days is None else max_age_days
        return InlineEnvLimits(
            max_age_secs=float(age) * DAY,
            max_count=int(self.setting("gc.inline_env_max_count")),
            budget_bytes=int(float(self.setting("gc.inline_env_budget_gb")) * 2**30),
        )

    # --- reporting -----------------------------------------------------------------------

    async def report(self) -> DiskReply:
        return await asyncio.to_thread(self._report)

    def _report(self) -> DiskReply:
        envs = self.inline.scan() + self._pool_envs()
        rooms = stored_rooms(self.docs_dir)
        blob_files = [p for p in self.blobs_dir.rglob("*") if p.is_file()]
        blobs = [p for p in blob_files if p.suffix != ".meta"]
        return DiskReply(
            envs=envs,
            stored_rooms=len(rooms),
            stored_rooms_bytes=sum(r.size_bytes for r in rooms),
            blobs=len(blobs),
            blobs_bytes=sum(p.stat().st_size for p in blob_files),
        )

    def _pool_envs(self) -> list[EnvUsage]:
        busy = self.inline.in_use()
        found = []
        for env_type, pool in self.pools.items():
            if not pool.envs_dir.is_dir():
                continue
            for prefix in sorted(pool.envs_dir.glob(f"runtimed-{env_type}-*")):
                found.append(usage_of(prefix, f"pool-{env_type}", busy))
        return found

    # --- collecting ----------------------------------------------------------------------

    async def clean(self, request: CleanEnvs) -> CleanReply:
        """One collection; ``request.dry_run`` only says what it would remove."""
        async with self._lock:
            envs = await asyncio.to_thread(self.inline.scan)
            doomed = self.inline.doomed(envs, self.limits(request.max_age_days), request.all)
            grace = float(self.setting("gc.room_grace_days")) * DAY
            rooms = await asyncio.to_thread(stored_rooms, self.docs_dir)
            old_rooms = prunable(rooms, self.open_rooms(), 0.0 if request.all else grace)
            if request.dry_run:
                freed = sum(e.size_bytes for e in doomed) + sum(r.size_bytes for r in old_rooms)
                return CleanReply(doomed, len(old_rooms), 0, freed, dry_run=True)
            removed = await asyncio.to_thread(self.inline.remove, doomed)
            freed = sum(e.size_bytes for e in removed)
            freed += await asyncio.to_thread(
                remove_room_files, self.docs_dir, old_rooms, lambda i: i in self.open_rooms()
            )
            before = await asyncio.to_thread(dir_size, self.blobs_dir)
            blobs = await self.collect_blobs()
            freed += before - await asyncio.to_thread(dir_size, self.blobs_dir)
        if removed or old_rooms or blobs:
            log.info(
                "disk: removed %d inline env(s), %d stored room(s), %d blob(s): %.0f MB",
                len(removed),
                len(old_rooms),
                len(blobs),
                freed / 2**20,
            )
        return CleanReply(removed, len(old_rooms), len(blobs), freed, dry_run=False)

    async def run(self, interval: float = GC_INTERVAL_SECS) -> None:
        """Collect every ``interval`` seconds, the first time soon after start (a task of
        the daemon: a start is no slower for it)."""
        await asyncio.sleep(min(interval, 60.0))
        while True:
            try:
                await self.clean(CleanEnvs())
            except Exception:
                log.exception("disk collection failed; retrying later")
            await asyncio.sleep(interval)
