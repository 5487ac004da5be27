"""RoomRegistry: finds or loads the one room per notebook, and evicts idle rooms."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from runtimed.daemon.rooms.notebook_loader import NotebookLoader
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_loading import LoadNotebook, load_room
from runtimed.errors import RuntimedError
from runtimed.protocol.control import RoomInfo
from runtimed.protocol.handshake import Handshake

log = logging.getLogger(__name__)

MAX_NOTEBOOK_ID = 1024


def validate_notebook_id(notebook_id: str) -> str:
    if not notebook_id or len(notebook_id) > MAX_NOTEBOOK_ID or "\x00" in notebook_id:
        raise RuntimedError(
            f"invalid notebook id (1-{MAX_NOTEBOOK_ID} characters, no NUL)", "invalid_notebook_id"
        )
    return notebook_id


class KernelsOfRooms(Protocol):
    """What the registry needs of the rooms' kernels (``RoomKernels``)."""

    def status(self, notebook_id: str) -> str | None:
        """The kernel status ``list_rooms`` shows; None when the room has no kernel."""

    async def close(self, room: NotebookRoom) -> None:
        """The room is going: stop its kernel and give its env back."""


class RoomRegistry:
    """Rooms by notebook id. Opening by path keys the room by the absolute path, so every
    client opening one file shares one room."""

    def __init__(
        self,
        docs_dir: Path,
        keep_alive_secs: Callable[[], float],
        room_kernels: KernelsOfRooms | None = None,
        load_notebook: LoadNotebook | None = None,
        on_new_notebook: Callable[[NotebookRoom], None] | None = None,
    ) -> None:
        """``room_kernels`` go with their rooms; ``load_notebook`` reads a notebook file (its
        large outputs moved to blobs); ``on_new_notebook`` is told of a notebook created
        here (no file yet, no cells: the trust marker goes in)."""
        self.docs_dir = docs_dir
        self.keep_alive_secs = keep_alive_secs
        self.room_kernels = room_kernels
        self.load_notebook = load_notebook or NotebookLoader()
        self.on_new_notebook = on_new_notebook
        self.rooms: dict[str, NotebookRoom] = {}
        self._opening: dict[str, asyncio.Task[NotebookRoom]] = {}
        self._evictions: dict[str, asyncio.TimerHandle] = {}
        #: Rooms kept without peers (runtimes started with ``runt start``).
        self.pinned: set[str] = set()

    async def open(self, handshake: Handshake) -> NotebookRoom:
        if handshake.channel == "open_notebook":
            if not handshake.path:
                raise RuntimedError("open_notebook needs a path", "invalid_request")
            if not os.path.isabs(handshake.path):  # the daemon's cwd means nothing to a client
                raise RuntimedError(
                    f"open_notebook: path must be absolute, not {handshake.path!r}",
                    "invalid_path",
                )
            notebook_id = os.path.realpath(handshake.path)
            path: str | None = notebook_id
        else:
            notebook_id = validate_notebook_id(handshake.notebook_id or "")
            path = None
        room = self.rooms.get(notebook_id)
        if room is not None and not room.peers and path is not None:
            room = await self._reload_if_changed(room)
        if room is None:
            # Concurrent openers of one notebook must share one creation.
            task = self._opening.get(notebook_id)
            if task is None:
                task = asyncio.ensure_future(self._create(notebook_id, path))
                self._opening[notebook_id] = task
                task.add_done_callback(lambda _: self._opening.pop(notebook_id, None))
            room = await asyncio.shield(task)
        self._cancel_eviction(notebook_id)
        return room

    async def _reload_if_changed(self, room: NotebookRoom) -> NotebookRoom | None:
        """A lingering room whose file changed on disk: dropped (and reopened from the
        file) when it has nothing unsaved; kept otherwise (its save will refuse to
        overwrite the newer file)."""
        if not await asyncio.to_thread(room.file.changed_on_disk):
            return room
        if room.file.dirty:
            log.warning("%s changed on disk, but its room has unsaved changes", room.file.path)
            return room
        log.info("%s changed on disk; reloading it", room.file.path)
        self._cancel_eviction(room.notebook_id)
        await self.evict(room.notebook_id)
        return None

    async def _create(self, notebook_id: str, path: str | None) -> NotebookRoom:
        room = await load_room(self.docs_dir, notebook_id, path, self.load_notebook, self._on_empty)
        self.rooms[notebook_id] = room
        if (
            self.on_new_notebook is not None
            and not len(room.nb.cells)
            and (path is None or not await asyncio.to_thread(os.path.exists, path))
        ):
            self.on_new_notebook(room)
        log.info(
            "room %s opened (epoch %s, %d cells)", notebook_id, room.epoch[:8], len(room.nb.cells)
        )
        return room

    def _on_empty(self, room: NotebookRoom) -> None:
        self._cancel_eviction(room.notebook_id)
        delay = self.keep_alive_secs()
        loop = asyncio.get_running_loop()
        self._evictions[room.notebook_id] = loop.call_later(
            delay, lambda: asyncio.ensure_future(self.evict(room.notebook_id))
        )

    def _cancel_eviction(self, notebook_id: str) -> None:
        handle = self._evictions.pop(notebook_id, None)
        if handle is not None:
            handle.cancel()

    async def evict(self, notebook_id: str) -> None:
        """Drop an idle room from memory (its document stays on disk)."""
        self._evictions.pop(notebook_id, None)
        room = self.rooms.get(notebook_id)
        if room is None or room.peers or notebook_id in self.pinned:
            return
        del self.rooms[notebook_id]
        await self._close(room)
        log.info("room %s evicted after %.0f s without peers", notebook_id, self.keep_alive_secs())

    def list(self) -> list[RoomInfo]:
        infos = []
        for room in self.rooms.values():
            status = (
                self.room_kernels.status(room.notebook_id)
                if self.room_kernels is not None
                else None
            )
            infos.append(
                RoomInfo(
                    notebook_id=room.notebook_id,
                    path=room.file.path,
                    active_peers=len(room.peers),
                    has_kernel=status is not None and status not in ("not_started", "shutdown"),
                    kernel_status=status,
                )
            )
        return infos

    async def close_all(self) -> None:
        for handle in self._evictions.values():
            handle.cancel()
        self._evictions.clear()
        rooms, self.rooms = list(self.rooms.values()), {}
        # Together: each kernel may take a moment to stop; a daemon stop waits for the
        # slowest, not for their sum.
        await asyncio.gather(*(self._close(room) for room in rooms), return_exceptions=True)

    async def _close(self, room: NotebookRoom) -> None:
        """A room that goes takes its kernel (and its env) with it."""
        if self.room_kernels is not None:
            await self.room_kernels.close(room)
        await room.close()
