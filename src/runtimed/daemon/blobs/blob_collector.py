"""Collecting blobs no document refers to any more.

A blob is referenced when its hash appears in any stored room document (snapshots and
logs, loaded or not) or in an open room: a conservative scan, so a blob some document
still needs is never removed; only those older than the grace period go (a blob is
written just before the document that refers to it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from runtimed.daemon.blobs.blob_store import BlobStore, hashes_in

log = logging.getLogger(__name__)


class BlobCollector:
    def __init__(
        self,
        store: BlobStore,
        docs_dir: Path,
        live_documents: Callable[[], list[bytes]],
        grace_secs: Callable[[], float],
    ) -> None:
        self.store = store
        self.docs_dir = docs_dir
        self.live_documents = live_documents
        self.grace_secs = grace_secs

    def referenced(self, live: list[bytes]) -> set[str]:
        """Every hash the stored and the open documents mention (blocking)."""
        referenced: set[str] = set()
        if self.docs_dir.is_dir():
            for path in self.docs_dir.rglob("*"):
                try:
                    if path.is_file():
                        referenced |= hashes_in(path.read_bytes())
                except OSError:
                    continue
        for update in live:
            referenced |= hashes_in(update)
        return referenced

    async def collect(self) -> list[str]:
        """One pass: unreferenced blobs older than the grace period are deleted."""
        live = self.live_documents()  # on the loop: the documents are the loop's
        referenced = await asyncio.to_thread(self.referenced, live)
        return await asyncio.to_thread(self.store.gc, referenced, self.grace_secs())

    async def run(self, interval: float) -> None:
        """Collect every ``interval`` seconds (a task of the daemon)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.collect()
            except Exception:
                log.exception("blob collection failed; retrying later")
