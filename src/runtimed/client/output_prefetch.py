"""OutputPrefetch: the blobs a running cell's outputs refer to, fetched as they appear.

A cell that prints 50 MB has its stream text stored in blobs while it runs (the daemon
spills it a part at a time). Fetched only once the cell ended, the parts are read after
the kernel is done, one after another; fetched as the document refers to them, they are
read while the kernel still prints, and the result is ready when the cell ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from runtimed.documents.blob_refs import output_refs
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError

Fetch = Callable[[str], Coroutine[Any, Any, bytes]]


class OutputPrefetch:
    """Watches the cells this session waits for; ``get`` hands out what was fetched."""

    def __init__(self, notebook: Callable[[], NotebookDoc], fetch: Fetch) -> None:
        self._notebook = notebook  # the replica (a new one after a reset)
        self._fetch = fetch
        self._cells: dict[str, int] = {}  # watched cell -> how many wait for it
        self._fetches: dict[str, asyncio.Task[bytes]] = {}
        self._scan: asyncio.Handle | None = None

    @property
    def watching(self) -> bool:
        return bool(self._cells)

    def watch(self, cell_id: str) -> None:
        self._cells[cell_id] = self._cells.get(cell_id, 0) + 1

    def unwatch(self, cell_id: str) -> None:
        left = self._cells.get(cell_id, 1) - 1
        if left > 0:
            self._cells[cell_id] = left
            return
        self._cells.pop(cell_id, None)
        if not self._cells:  # what nobody took is in the blob client's cache anyway
            self._fetches.clear()

    def on_update(self, update: bytes) -> None:
        """A transaction of the replica (its Yjs update): one that may hold a blob
        reference (the key ``blob`` appears in it) gets the watched cells scanned once
        the transaction is over."""
        if self._cells and self._scan is None and b"blob" in update:
            self._scan = asyncio.get_running_loop().call_soon(self._scan_cells)

    def _scan_cells(self) -> None:
        """Fetch what the watched cells refer to now; drop what they no longer do (a
        plot redrawn every second, a cleared output), or a long cell's fetched bytes
        would pile up until it ends."""
        self._scan = None
        notebook = self._notebook()
        wanted: dict[str, None] = {}  # in the order the outputs refer to them
        for cell_id in list(self._cells):
            try:
                outputs, _ = notebook.get_outputs(cell_id)
            except RuntimedError:
                continue  # not in the replica yet, or deleted
            wanted.update(dict.fromkeys(str(r["blob"]) for o in outputs for r in output_refs(o)))
        for digest in [d for d in self._fetches if d not in wanted]:
            self._fetches.pop(digest).cancel()
        for digest in [d for d in wanted if d not in self._fetches]:
            task = asyncio.create_task(self._fetch(digest))
            task.add_done_callback(_retrieved)  # a failure is raised by get()
            self._fetches[digest] = task

    async def get(self, digest: str) -> bytes:
        """A blob's bytes: the prefetched ones at once (or when their read ends)."""
        task = self._fetches.pop(digest, None)
        if task is not None:
            try:
                return await task
            except (RuntimedError, OSError):
                pass  # fetched again below, its error raised there
        return await self._fetch(digest)


def _retrieved(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()
