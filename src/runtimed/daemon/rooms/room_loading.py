"""Loading a room from disk: its stored document, or its notebook file, into a
``NotebookRoom`` with its ``NotebookFile`` and ``RoomPersistence``.

A stored room is reused when its meta and snapshot pass their checks, its file is as it
was when last loaded or saved (the stored document holds the file plus any unsaved
edits; the file is then not parsed), and the document holds at least the state its file
was saved at. A file changed on disk drops the stored room; one that fails its checks is
kept aside (``*.corrupt-<time>``, named in one warning). Either way the file is loaded
under a new epoch. A log damaged past some record keeps the room, with the records
before it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtimed.daemon.rooms.notebook_file import NotebookFile, file_hash
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_persistence import RoomPersistence
from runtimed.daemon.rooms.room_store import DamagedRoom, RoomStore, StoredRoom
from runtimed.daemon.rooms.store_format import missing_state
from runtimed.documents.notebook import NotebookDoc

log = logging.getLogger(__name__)

#: Reads a notebook file: the nbformat dict and the hash of the file (``NotebookLoader``).
LoadNotebook = Callable[[Path], Awaitable[tuple[dict[str, Any], str]]]


def new_epoch() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RoomContent:
    """What a room starts from: stored updates or a notebook file, and its file's state.

    ``rewrite``: the store must get a new snapshot before logging (it was written by an
    older version, or a log was damaged). A room without stored updates always gets one.
    """

    epoch: str
    path: str | None
    file_hash: str | None = None
    clean_state: str | None = None
    stored_updates: list[bytes] = field(default_factory=list)
    notebook: dict[str, Any] | None = None
    file_cells: int | None = None
    cells_deleted: int = 0
    rewrite: bool = False


async def load_room(
    docs_dir: Path,
    notebook_id: str,
    path: str | None,
    load_notebook: LoadNotebook,
    on_empty: Callable[[NotebookRoom], None],
) -> NotebookRoom:
    """The room of ``notebook_id`` (its file at ``path``, if any), started."""
    store = RoomStore(docs_dir, notebook_id)
    found = store.load()
    if isinstance(found, StoredRoom):
        if await _file_unchanged(found, path):
            room = _reuse(store, notebook_id, path, found, on_empty)
            if isinstance(room, NotebookRoom):
                return room
            found = room
        else:
            log.info("%s changed on disk since it was last open; reloading it", path)
            store.delete()
            found = None
    if isinstance(found, DamagedRoom):
        kept = store.set_aside_all(found.damaged)
        log.warning(
            "the stored document of %s is damaged (%s); %s; its files are kept as %s",
            path or notebook_id,
            _reasons(found.damaged),
            f"loading {path} instead" if path else "starting it empty",
            ", ".join(str(p) for p in kept) or "nothing",
        )
    content = await _file_content(path, load_notebook)
    return start_room(store, notebook_id, content, on_empty)


async def _file_unchanged(stored: StoredRoom, path: str | None) -> bool:
    if path is None:
        return True
    current = await asyncio.to_thread(file_hash, Path(path)) if os.path.exists(path) else None
    return bool(stored.meta.get("file_hash") == current)


def _reuse(
    store: RoomStore,
    notebook_id: str,
    path: str | None,
    stored: StoredRoom,
    on_empty: Callable[[NotebookRoom], None],
) -> NotebookRoom | DamagedRoom:
    """The stored room started, or why it cannot be: it lacks the state its file was
    saved at (a log lost records its file has)."""
    meta = stored.meta
    cells = meta.get("file_cells")
    deleted = meta.get("cells_deleted")
    content = RoomContent(
        epoch=str(meta.get("epoch") or new_epoch()),
        path=path or meta.get("path"),
        file_hash=meta.get("file_hash"),
        clean_state=meta.get("clean_state"),
        stored_updates=stored.updates,
        file_cells=cells if isinstance(cells, int) else None,
        cells_deleted=deleted if isinstance(deleted, int) else 0,
        rewrite=stored.legacy or bool(stored.damaged),
    )
    room, persistence = _build(store, notebook_id, content, on_empty)
    missing = missing_state(room.nb.doc.get_state(), content.clean_state)
    if missing is not None:
        return DamagedRoom({**stored.damaged, store.snapshot_path: missing})
    if stored.damaged:
        kept = store.set_aside(list(stored.damaged))
        log.warning(
            "the stored log of %s is damaged (%s); kept what was readable before it; "
            "the damaged files are kept as %s",
            path or notebook_id,
            _reasons(stored.damaged),
            ", ".join(str(p) for p in kept),
        )
    return _start(room, persistence, content)


async def _file_content(path: str | None, load_notebook: LoadNotebook) -> RoomContent:
    if path is None or not os.path.exists(path):
        return RoomContent(epoch=new_epoch(), path=path)
    notebook, loaded_hash = await load_notebook(Path(path))
    return RoomContent(epoch=new_epoch(), path=path, file_hash=loaded_hash, notebook=notebook)


def start_room(
    store: RoomStore,
    notebook_id: str,
    content: RoomContent,
    on_empty: Callable[[NotebookRoom], None],
) -> NotebookRoom:
    """A room, its file and its persistence made from ``content``, logging from now on."""
    room, persistence = _build(store, notebook_id, content, on_empty)
    return _start(room, persistence, content)


def _build(
    store: RoomStore,
    notebook_id: str,
    content: RoomContent,
    on_empty: Callable[[NotebookRoom], None],
) -> tuple[NotebookRoom, RoomPersistence]:
    """The room filled from ``content``, not yet started (nothing written)."""
    nb = NotebookDoc()
    file = NotebookFile(
        nb,
        content.path,
        content.file_hash,
        content.clean_state,
        file_cells=content.file_cells,
        cells_deleted=content.cells_deleted,
    )
    persistence = RoomPersistence(store, nb, notebook_id, content.epoch, file)
    file.on_meta_changed = persistence.write_meta
    room = NotebookRoom(notebook_id, content.epoch, nb, file, persistence, on_empty)
    room.load(content.stored_updates, content.notebook)
    if content.notebook is not None:
        file.mark_clean()
    return room, persistence


def _start(room: NotebookRoom, persistence: RoomPersistence, content: RoomContent) -> NotebookRoom:
    """Write what the store needs (a snapshot, then the meta naming it), then log.

    The snapshot is fsynced only when it is the one durable copy of what it holds (a
    rewrite of old or damaged store files). A new room's (empty) or a file's state is not:
    the file stays, and the log records that follow are not fsynced either (the store
    survives a killed daemon; a crash of the machine that loses this snapshot loses
    them too, and the room then loads from its file). Waiting on that fsync held every
    new room's first result up by 3 ms, and by 60 ms while another process wrote."""
    if content.notebook is not None or content.rewrite or not content.stored_updates:
        # The snapshot the meta's epoch vouches for comes first.
        persistence.compact(sync=content.rewrite)
    persistence.write_meta()
    room.file.watch_cells()
    persistence.open()
    room.start()
    return room


def _reasons(damaged: dict[Path, str]) -> str:
    return "; ".join(f"{path.name}: {why}" for path, why in damaged.items())
