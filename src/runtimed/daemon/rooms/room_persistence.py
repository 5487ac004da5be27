"""RoomPersistence: a room's notebook document made durable in its ``RoomStore``.

The room hands it every update before it sends the update to anyone (acknowledged means
durable); it appends the update to the log and schedules compaction: 2 s after a burst,
or in the next loop turn past 4 MiB of log. Compaction swaps the logs on the event loop and writes
the snapshot (fsync) in a thread, one snapshot at a time. It also keeps the room's
stored meta: its id, epoch and what its ``NotebookFile`` knows of the file.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runtimed.daemon.rooms.notebook_file import NotebookFile
from runtimed.daemon.rooms.room_store import RoomStore
from runtimed.documents.notebook import NotebookDoc

log = logging.getLogger(__name__)

COMPACT_AFTER_BYTES = 4 * 1024 * 1024
COMPACT_DELAY_SECS = 2.0


class RoomPersistence:
    """Logs, compacts and describes (meta) one room's document in its store."""

    def __init__(
        self,
        store: RoomStore,
        nb: NotebookDoc,
        notebook_id: str,
        epoch: str,
        file: NotebookFile,
        compact_after_bytes: int = COMPACT_AFTER_BYTES,
        compact_delay_secs: float = COMPACT_DELAY_SECS,
    ) -> None:
        self.store = store
        store.bind(epoch)  # its checksums name this history of the room
        self.nb = nb
        self.notebook_id = notebook_id
        self.epoch = epoch
        self.file = file
        self.compact_after_bytes = compact_after_bytes
        self.compact_delay_secs = compact_delay_secs
        self._compact_handle: asyncio.Handle | None = None
        self._compact_soon = False  # the handle runs in the next loop turn
        self._snapshot_task: asyncio.Task[None] | None = None

    def open(self) -> None:
        """Open the logs: from now on updates are appended."""
        self.store.open()

    def meta(self) -> dict[str, Any]:
        """The stored meta: the room's id and epoch, and what it knows of its file."""
        return {"notebook_id": self.notebook_id, "epoch": self.epoch, **self.file.meta()}

    def write_meta(self) -> None:
        self.store.write_meta(self.meta())

    # --- updates -------------------------------------------------------------------

    def append(self, update: bytes) -> None:
        """Log one update of the document (before anyone is told of it), then schedule
        a compaction: soon past the log limit, else after the delay."""
        self.store.append(update)
        if self.store.wal_bytes > self.compact_after_bytes:
            if not self._compact_soon:
                # Not here: this runs inside the transaction that made the update, where
                # pycrdt cannot read the document's state.
                self._cancel_scheduled()
                self._compact_handle = asyncio.get_running_loop().call_soon(
                    self._compact_in_background
                )
                self._compact_soon = True
        elif self._compact_handle is None:
            self._compact_later()

    def _compact_later(self) -> None:
        loop = asyncio.get_running_loop()
        self._compact_handle = loop.call_later(self.compact_delay_secs, self._compact_in_background)

    def _compact_in_background(self) -> None:
        """Rotate the log here; write the snapshot (fsync) in a thread, off the loop."""
        self._cancel_scheduled()
        if self._snapshot_task is not None and not self._snapshot_task.done():
            self._compact_later()  # one snapshot at a time: try again shortly
            return
        state = self.nb.doc.get_update()
        covered = self.store.rotate()
        self._snapshot_task = asyncio.create_task(
            asyncio.to_thread(self.store.write_snapshot, state, covered)
        )
        self._snapshot_task.add_done_callback(self._snapshot_done)

    def _snapshot_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # The log it should have emptied keeps its updates; the next compaction retries.
            log.error("cannot write the snapshot of %s: %s", self.notebook_id, task.exception())

    def _cancel_scheduled(self) -> None:
        if self._compact_handle is not None:
            self._compact_handle.cancel()
            self._compact_handle = None
        self._compact_soon = False

    def compact(self, *, sync: bool = True) -> None:
        """Snapshot the document and empty both logs, blocking (opening and closing);
        ``sync=False``: without an fsync (``RoomStore.compact``)."""
        self._cancel_scheduled()
        self.store.compact(self.nb.doc.get_update(), sync=sync)

    async def close(self) -> None:
        """Wait for a snapshot being written, compact, and close the logs."""
        if self._snapshot_task is not None:
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
        self.compact()
        self.store.close()
