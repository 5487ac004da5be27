"""NotebookRoom: one shared notebook document, its runtime document and its peers.

The room only syncs. Its file (save, change detection) is its ``NotebookFile``; its
durability (the log, compaction, the stored meta) the ``UpdateLog`` it hands every
update to before any peer hears of it; its kernel is the ``RoomKernels``' business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import pycrdt
from pycrdt import Doc, create_sync_message, create_update_message

from runtimed.daemon.rooms.notebook_file import NotebookFile
from runtimed.daemon.rooms.peer import MAX_AWARENESS, Peer
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.documents.nesting_guard import NestingGuard, UpdateRejected
from runtimed.documents.notebook import NotebookDoc
from runtimed.documents.notebook_schema import repair_cells, touched_cells
from runtimed.documents.runtime import RuntimeDoc
from runtimed.documents.sync import apply_sync_frame, check_sync_frame
from runtimed.errors import ProtocolError
from runtimed.protocol.frames import FrameType, pack_json

log = logging.getLogger(__name__)


class UpdateLog(Protocol):
    """Where a room's notebook updates become durable (``RoomPersistence``)."""

    def append(self, update: bytes) -> None:
        """Log one update; called before any peer is sent it."""

    async def close(self) -> None:
        """The room is closing: make everything durable and release the files."""


class NotebookRoom:
    """Hosts one notebook: every update from any peer (or the daemon itself) is logged,
    then sent to every other peer."""

    def __init__(
        self,
        notebook_id: str,
        epoch: str,
        nb: NotebookDoc,
        file: NotebookFile,
        update_log: UpdateLog,
        on_empty: Callable[[NotebookRoom], None],
    ) -> None:
        self.notebook_id = notebook_id
        self.epoch = epoch
        self.nb = nb
        self.file = file
        self.update_log = update_log
        self.on_empty = on_empty
        self.guard = NestingGuard(self.nb.doc.get_update)
        # Written only through runtime_state, which batches changes into few transactions.
        self.runtime_state = RuntimeState(RuntimeDoc())
        self.peers: dict[int, Peer] = {}
        self.created_at = time.time()
        self._origin: Peer | None = None
        self._touched: set[int] = set()
        self._runtime_reset: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def runtime(self) -> Doc[Any]:
        """The runtime document peers sync (a new one after each rebuild)."""
        return self.runtime_state.doc.doc

    # --- setup ---------------------------------------------------------------------

    def load(self, stored_updates: list[bytes], notebook: dict[str, Any] | None) -> None:
        """Fill the document before it starts: stored updates, then a notebook file's
        content (nbformat dict); cells a document poisoned before this daemon guarded it
        are repaired."""
        for update in stored_updates:
            try:
                self.guard.check(update)  # written before the daemon guarded depth?
            except UpdateRejected as exc:
                log.warning("%s: skipping a stored update: %s", self.notebook_id, exc)
                continue
            self.nb.doc.apply_update(update)
        if notebook is not None:
            self.nb.load_nbformat(notebook)
        self.nb.ensure_meta()
        repair_cells(self.nb)

    def start(self) -> None:
        """From now on every update is logged, then sent to the peers."""
        self.nb.doc.observe(self._on_notebook_update)
        self.runtime.observe(self._on_runtime_update)

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
        """Send ``event`` to every peer (but ``exclude``), after the runtime state it
        speaks of, with the loop turn's other frames (one write per peer)."""
        self.runtime_state.flush()  # peers see the state an event speaks of before it
        frame = pack_json(FrameType.EVENT, event)[1:]
        for peer in list(self.peers.values()):
            if peer is not exclude:
                peer.send(FrameType.EVENT, frame)

    def broadcast_event_now(self, event: dict[str, Any]) -> None:
        """``broadcast_event``, then what each peer has queued is written at once: for an
        event that ends what a client waits for (``execution_done``: the execution's
        outputs, state and the event go before the daemon does anything else)."""
        self.broadcast_event(event)
        for peer in list(self.peers.values()):
            peer.flush()

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
        # Only while a peer's frame applies: pycrdt builds the deep events of every
        # transaction observed, and the daemon's own writes (outputs) need no repair.
        watch = self.nb.cells.observe_deep(self._on_cells_deep)
        try:
            reply = apply_sync_frame(payload, self.nb.doc, "notebook", self.guard)
        finally:
            self._origin = None
            self.nb.cells.unobserve(watch)
        if reply is not None:
            peer.send(FrameType.NOTEBOOK_SYNC, reply)
        if self._touched:  # the shape is guarded; the repair reaches every peer
            touched, self._touched = self._touched, set()
            repair_cells(self.nb, touched)
        self.nb.remove_duplicate_cells()  # concurrent moves can leave two copies

    def _on_cells_deep(self, events: list[Any]) -> None:
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
        self.update_log.append(update)  # before anyone is told: acknowledged means durable
        message = create_update_message(update)
        for peer in list(self.peers.values()):
            if peer is not self._origin:
                peer.send(FrameType.NOTEBOOK_SYNC, message)
        if self._origin is None:  # a peer's update was indexed when it was checked
            self._record_in_guard(update)

    def _record_in_guard(self, update: bytes) -> None:
        """The daemon's own update goes into the guard's index after this loop turn (or
        before the next peer update is checked): not between an execution's last
        outputs and the peers."""
        was_behind = self.guard.behind
        self.guard.record(update)
        if was_behind or not self.guard.behind:
            return
        try:
            asyncio.get_running_loop().call_soon(self.guard.catch_up)
        except RuntimeError:  # no loop (set-up code): now
            self.guard.catch_up()

    def _on_runtime_update(self, event: pycrdt.TransactionEvent) -> None:
        message = create_update_message(event.update)
        for peer in list(self.peers.values()):
            peer.send(FrameType.RUNTIME_SYNC, message)
        if self.runtime_state.needs_rebuild and self._runtime_reset is None:
            self._runtime_reset = asyncio.get_running_loop().call_soon(self.reset_runtime)

    def reset_runtime(self) -> None:
        """Rebuild the runtime document without its tombstones; every peer is told to
        drop its replica, then gets the new document whole (in that order)."""
        self._runtime_reset = None
        self.runtime_state.rebuild()
        self.runtime.observe(self._on_runtime_update)
        event = pack_json(FrameType.EVENT, {"event": "runtime_reset"})[1:]
        state = create_update_message(self.runtime.get_update())
        for peer in list(self.peers.values()):
            peer.send(FrameType.EVENT, event)
            peer.send(FrameType.RUNTIME_SYNC, state)

    # --- teardown ------------------------------------------------------------------

    async def close(self) -> None:
        """Cancel the room's requests, write its pending state and close its log."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runtime_reset is not None:
            self._runtime_reset.cancel()
            self._runtime_reset = None
        self.runtime_state.close()
        await self.update_log.close()
        self.peers.clear()
