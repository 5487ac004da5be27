"""NotebookRoom: one shared notebook document, its peers and its persistence."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pycrdt
from pycrdt import Doc, create_sync_message, create_update_message

from runtimed.daemon.rooms.peer import MAX_AWARENESS, Peer
from runtimed.daemon.rooms.room_store import RoomStore
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.documents.nesting_guard import NestingGuard, UpdateRejected
from runtimed.documents.notebook import NotebookDoc
from runtimed.documents.notebook_schema import repair_cells, touched_cells
from runtimed.documents.runtime import RuntimeDoc
from runtimed.documents.sync import apply_sync_frame, check_sync_frame
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.files import atomic_write
from runtimed.protocol.frames import FrameType, pack_json

log = logging.getLogger(__name__)

COMPACT_AFTER_BYTES = 4 * 1024 * 1024
COMPACT_DELAY_SECS = 2.0
#: The runtime document keeps 500 records; every deleted one leaves a tombstone. After
#: this many it is rebuilt, and peers replace their replica (event ``runtime_reset``).
RESET_RUNTIME_AFTER = 500


class NotebookRoom:
    """Hosts one notebook: every update from any peer (or the daemon itself) is logged,
    then sent to every other peer."""

    def __init__(
        self,
        notebook_id: str,
        store: RoomStore,
        epoch: str,
        path: str | None,
        on_empty: Callable[[NotebookRoom], None],
    ) -> None:
        self.notebook_id = notebook_id
        self.store = store
        self.epoch = epoch
        self.path = path
        self.file_hash: str | None = None
        #: The document's state vector when it last matched its file (loaded or saved).
        self.clean_state: str | None = None
        self.on_empty = on_empty
        self.nb = NotebookDoc()
        self.guard = NestingGuard(self.nb.doc.get_update)
        self.runtime: Doc[Any] = Doc()
        # Written only through runtime_state, which batches changes into few transactions.
        self.runtime_state = RuntimeState(RuntimeDoc(self.runtime))
        self.peers: dict[int, Peer] = {}
        self.created_at = time.time()
        self.extensions: dict[str, Any] = {}  # the kernel, attached by the requests
        self._origin: Peer | None = None
        self._touched: set[int] = set()
        self._compact_handle: asyncio.TimerHandle | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._runtime_reset: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- setup ---------------------------------------------------------------------

    def start(self, persisted_updates: list[bytes], notebook: dict[str, Any] | None) -> None:
        """Load persisted state or a notebook file, then start logging updates."""
        for update in persisted_updates:
            try:
                self.guard.check(update)  # written before the daemon guarded depth?
            except UpdateRejected as exc:
                log.warning("%s: skipping a stored update: %s", self.notebook_id, exc)
                continue
            self.nb.doc.apply_update(update)
        if notebook is not None:
            self.nb.load_nbformat(notebook)
        self.nb.ensure_meta()
        repair_cells(self.nb)  # a document poisoned before this daemon guarded it
        if notebook is not None:
            self.clean_state = self.nb.doc.get_state().hex()
        self.nb.cells.observe_deep(self._on_cells_deep)
        self.nb.doc.observe(self._on_notebook_update)
        self.runtime.observe(self._on_runtime_update)
        self.write_meta()
        if notebook is not None:
            self.compact()  # the file's content becomes the first snapshot
        self.store.open()

    def write_meta(self) -> None:
        self.store.write_meta(
            {
                "notebook_id": self.notebook_id,
                "epoch": self.epoch,
                "path": self.path,
                "file_hash": self.file_hash,
                "clean_state": self.clean_state,
            }
        )

    # --- peers ---------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        peer.send(FrameType.NOTEBOOK_SYNC, create_sync_message(self.nb.doc))
        peer.send(FrameType.RUNTIME_SYNC, create_sync_message(self.runtime))
        for other in self.peers.values():
            if other is not peer and other.awareness is not None:
                peer.send(FrameType.AWARENESS, other.awareness)
        log.debug("%s joined %s (%d peers)", peer, self.notebook_id, len(self.peers))

    def leave(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        if not self.peers:
            self.on_empty(self)

    def broadcast_event(self, event: dict[str, Any], exclude: Peer | None = None) -> None:
        self.runtime_state.flush()  # peers see the state an event speaks of before it
        frame = pack_json(FrameType.EVENT, event)[1:]
        for peer in list(self.peers.values()):
            if peer is not exclude:
                peer.send(FrameType.EVENT, frame)

    # --- frames --------------------------------------------------------------------

    def handle_frame(self, peer: Peer, frame_type: FrameType, payload: bytes) -> None:
        """A document, runtime or awareness frame (requests are the channel's)."""
        if frame_type is FrameType.NOTEBOOK_SYNC:
            self._handle_notebook_sync(peer, payload)
        elif frame_type is FrameType.RUNTIME_SYNC:
            self._handle_runtime_sync(peer, payload)
        elif frame_type is FrameType.AWARENESS:
            if len(payload) > MAX_AWARENESS:
                raise ProtocolError(
                    f"awareness frame of {len(payload)} bytes; presence may use at most "
                    f"{MAX_AWARENESS} bytes",
                    "frame_too_large",
                )
            peer.awareness = payload
            for other in list(self.peers.values()):
                if other is not peer:
                    other.send_ephemeral(FrameType.AWARENESS, payload)
        else:
            raise ProtocolError(f"clients may not send {frame_type.name} frames", "malformed_frame")

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (a request) as a task of the room: cancelled when the room closes."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _handle_notebook_sync(self, peer: Peer, payload: bytes) -> None:
        self._origin = peer
        try:
            reply = apply_sync_frame(payload, self.nb.doc, "notebook", self.guard)
        finally:
            self._origin = None
        if reply is not None:
            peer.send(FrameType.NOTEBOOK_SYNC, reply)
        if self._touched:  # the shape is guarded; the repair reaches every peer
            touched, self._touched = self._touched, set()
            repair_cells(self.nb, touched)
        self.nb.remove_duplicate_cells()  # concurrent moves can leave two copies

    def _on_cells_deep(self, events: list[Any]) -> None:
        if self._origin is not None:  # a peer's change (the daemon's own are trusted)
            self._touched |= touched_cells(events)

    def _handle_runtime_sync(self, peer: Peer, payload: bytes) -> None:
        check_sync_frame(payload, "runtime")
        if payload[1] != 0:
            return  # the runtime doc is written only by the daemon; client writes are dropped
        reply = apply_sync_frame(payload, self.runtime, "runtime")
        if reply is not None:
            peer.send(FrameType.RUNTIME_SYNC, reply)

    def _on_notebook_update(self, event: pycrdt.TransactionEvent) -> None:
        update = event.update
        self.store.append(update)  # logged before anyone is told: acknowledged means durable
        if self._origin is None:  # a peer's update was indexed when it was checked
            self.guard.record(update)
        message = create_update_message(update)
        for peer in list(self.peers.values()):
            if peer is not self._origin:
                peer.send(FrameType.NOTEBOOK_SYNC, message)
        self._schedule_compaction()

    def _on_runtime_update(self, event: pycrdt.TransactionEvent) -> None:
        message = create_update_message(event.update)
        for peer in list(self.peers.values()):
            peer.send(FrameType.RUNTIME_SYNC, message)
        if self.runtime_state.deleted >= RESET_RUNTIME_AFTER and self._runtime_reset is None:
            self._runtime_reset = asyncio.get_running_loop().call_soon(self.reset_runtime)

    def reset_runtime(self) -> None:
        """Rebuild the runtime document without its tombstones; every peer is told to
        drop its replica, then gets the new document whole (in that order)."""
        self._runtime_reset = None
        self.runtime_state.flush()
        fresh = self.runtime_state.doc.copy()
        self.runtime_state.replace_doc(fresh)
        self.runtime = fresh.doc
        self.runtime.observe(self._on_runtime_update)
        event = pack_json(FrameType.EVENT, {"event": "runtime_reset"})[1:]
        state = create_update_message(self.runtime.get_update())
        for peer in list(self.peers.values()):
            peer.send(FrameType.EVENT, event)
            peer.send(FrameType.RUNTIME_SYNC, state)

    # --- persistence ---------------------------------------------------------------

    def _schedule_compaction(self) -> None:
        if self.store.wal_bytes > COMPACT_AFTER_BYTES:
            self._compact_in_background()
            return
        if self._compact_handle is None:
            loop = asyncio.get_running_loop()
            self._compact_handle = loop.call_later(COMPACT_DELAY_SECS, self._compact_in_background)

    def _compact_in_background(self) -> None:
        """Rotate the log here; write the snapshot (fsync) in a thread, off the loop."""
        if self._compact_handle is not None:
            self._compact_handle.cancel()
            self._compact_handle = None
        if self._snapshot_task is not None and not self._snapshot_task.done():
            # one snapshot at a time: try again shortly
            loop = asyncio.get_running_loop()
            self._compact_handle = loop.call_later(COMPACT_DELAY_SECS, self._compact_in_background)
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

    def compact(self) -> None:
        if self._compact_handle is not None:
            self._compact_handle.cancel()
            self._compact_handle = None
        self.store.compact(self.nb.doc.get_update())

    @property
    def dirty(self) -> bool:
        """True when the document has changes its file does not have."""
        return self.clean_state != self.nb.doc.get_state().hex()

    def changed_on_disk(self) -> bool:
        """True when the room's file is not the one it last loaded or saved."""
        from runtimed.daemon.rooms.notebook_file import file_hash

        return self.path is not None and file_hash(Path(self.path)) != self.file_hash

    def save_ipynb(
        self,
        path: str | None,
        blob_fetch: Callable[[str], bytes] | None = None,
        force: bool = False,
    ) -> str:
        """Write the notebook as nbformat-valid .ipynb, atomically (temp + rename).

        Its own file is not overwritten when it changed on disk since it was loaded or
        saved, unless ``force``.
        """
        import nbformat

        target = path or self.path
        if not target:
            raise RuntimedError("this notebook has no file yet; pass a path to save()", "no_path")
        if not os.path.isabs(target):
            raise RuntimedError(f"save path must be absolute: {target!r}", "invalid_path")
        if target == self.path and not force and self.changed_on_disk():
            raise RuntimedError(
                f"{target} changed on disk since this notebook was opened or saved; "
                "reopen it to load the new version, or save with force=True to overwrite it",
                "file_changed",
            )
        state = self.nb.doc.get_state().hex()
        nb_dict = self.nb.to_nbformat()
        if blob_fetch is not None:  # outputs hold blob references: the file gets the content
            from runtimed.documents.blob_refs import resolve_output

            for cell in nb_dict["cells"]:
                if "outputs" in cell:
                    cell["outputs"] = [resolve_output(o, blob_fetch) for o in cell["outputs"]]
        nb = nbformat.from_dict(nb_dict)  # type: ignore[no-untyped-call]
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as exc:
            raise RuntimedError(
                f"the notebook is not valid nbformat: {exc.message}", "invalid_notebook"
            ) from exc
        text = nbformat.writes(nb)  # type: ignore[no-untyped-call]
        try:
            atomic_write(Path(target), text.encode("utf-8"), sync=False)
        except OSError as exc:
            raise RuntimedError(f"cannot write {target}: {exc.strerror}", "io_error") from exc
        from runtimed.daemon.rooms.notebook_file import text_hash

        if self.path is None or self.path == target:
            self.path = target
            self.file_hash = text_hash(text)
            self.clean_state = state
            self.write_meta()
        return target

    # --- teardown ------------------------------------------------------------------

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._snapshot_task is not None:
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
        self.runtime_state.close()
        self.compact()
        self.store.close()
        self.peers.clear()
