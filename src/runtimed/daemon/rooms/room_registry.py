"""RoomRegistry: finds or creates the one room per notebook, and evicts idle rooms."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from runtimed.daemon.rooms.notebook_file import file_hash as hash_of_file
from runtimed.daemon.rooms.notebook_file import text_hash
from runtimed.daemon.rooms.notebook_loader import NotebookLoader
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_store import RoomStore
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


def new_epoch() -> str:
    return uuid.uuid4().hex


class RoomRegistry:
    """Rooms by notebook id. Opening by path keys the room by the absolute path, so every
    client opening one file shares one room."""

    def __init__(
        self,
        docs_dir: Path,
        keep_alive_secs: Callable[[], float],
        on_evict: Callable[[NotebookRoom], Awaitable[None]] | None = None,
        load_notebook: NotebookLoader | None = None,
    ) -> None:
        """``load_notebook`` reads a notebook file (its large outputs moved to blobs)."""
        self.docs_dir = docs_dir
        self.keep_alive_secs = keep_alive_secs
        self.on_evict = on_evict
        self.load_notebook = load_notebook or NotebookLoader()
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
        if not await asyncio.to_thread(room.changed_on_disk):
            return room
        if room.dirty:
            log.warning("%s changed on disk, but its room has unsaved changes", room.path)
            return room
        log.info("%s changed on disk; reloading it", room.path)
        self._cancel_eviction(room.notebook_id)
        await self.evict(room.notebook_id)
        return None

    async def _create(self, notebook_id: str, path: str | None) -> NotebookRoom:
        store = RoomStore(self.docs_dir, notebook_id)
        stored = store.load()
        updates: list[bytes] = []
        nb_dict = None
        file_hash = None
        clean_state = None
        if stored is not None and path is not None and os.path.exists(path):
            # the stored room is reused if the file is as it was (no need to parse it)
            file_hash = await asyncio.to_thread(hash_of_file, Path(path))
        if stored is not None and (path is None or stored.meta.get("file_hash") == file_hash):
            epoch = str(stored.meta.get("epoch") or new_epoch())
            updates = stored.updates
            path = path or stored.meta.get("path")
            file_hash = stored.meta.get("file_hash")
            clean_state = stored.meta.get("clean_state")
            nb_dict = None  # the stored doc already holds the file plus unsaved edits
        else:
            if stored is not None:
                log.info("%s changed on disk since it was last open; reloading it", path)
                store.delete()
            if path is not None and os.path.exists(path):
                nb_dict, file_hash = await self.load_notebook(Path(path))
            epoch = new_epoch()
        room = NotebookRoom(notebook_id, store, epoch, path, self._on_empty)
        room.file_hash = file_hash
        room.start(updates, nb_dict)
        if nb_dict is None:
            room.clean_state = clean_state
        self.rooms[notebook_id] = room
        log.info("room %s opened (epoch %s, %d cells)", notebook_id, epoch[:8], len(room.nb.cells))
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
        if self.on_evict is not None:
            await self.on_evict(room)
        await room.close()
        log.info("room %s evicted after %.0f s without peers", notebook_id, self.keep_alive_secs())

    def list(self) -> list[RoomInfo]:
        infos = []
        for room in self.rooms.values():
            status = getattr(room.extensions.get("kernel"), "status", None)
            infos.append(
                RoomInfo(
                    notebook_id=room.notebook_id,
                    path=room.path,
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
        if self.on_evict is not None:
            await self.on_evict(room)
        await room.close()


__all__ = ["RoomRegistry", "text_hash"]
