"""Loading a room from disk: its stored document, or its notebook file, into a
``NotebookRoom`` with its ``NotebookFile`` and ``RoomPersistence``.

A stored room is reused when its file is as it was when last loaded or saved (the
stored document holds the file plus any unsaved edits; the file is then not parsed);
otherwise the stored room is dropped and the file loaded under a new epoch.
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
from runtimed.daemon.rooms.room_store import RoomStore
from runtimed.documents.notebook import NotebookDoc

log = logging.getLogger(__name__)

#: Reads a notebook file: the nbformat dict and the hash of the file (``NotebookLoader``).
LoadNotebook = Callable[[Path], Awaitable[tuple[dict[str, Any], str]]]


def new_epoch() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RoomContent:
    """What a room starts from: stored updates or a notebook file, and its file's state."""

    epoch: str
    path: str | None
    file_hash: str | None = None
    clean_state: str | None = None
    stored_updates: list[bytes] = field(default_factory=list)
    notebook: dict[str, Any] | None = None


async def load_room(
    docs_dir: Path,
    notebook_id: str,
    path: str | None,
    load_notebook: LoadNotebook,
    on_empty: Callable[[NotebookRoom], None],
) -> NotebookRoom:
    """The room of ``notebook_id`` (its file at ``path``, if any), started."""
    store = RoomStore(docs_dir, notebook_id)
    content = await _content(store, path, load_notebook)
    return start_room(store, notebook_id, content, on_empty)


async def _content(store: RoomStore, path: str | None, load_notebook: LoadNotebook) -> RoomContent:
    stored = store.load()
    current_hash = None
    if stored is not None and path is not None and os.path.exists(path):
        current_hash = await asyncio.to_thread(file_hash, Path(path))
    if stored is not None and (path is None or stored.meta.get("file_hash") == current_hash):
        meta = stored.meta
        return RoomContent(
            epoch=str(meta.get("epoch") or new_epoch()),
            path=path or meta.get("path"),
            file_hash=meta.get("file_hash"),
            clean_state=meta.get("clean_state"),
            stored_updates=stored.updates,
        )
    if stored is not None:
        log.info("%s changed on disk since it was last open; reloading it", path)
        store.delete()
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
    nb = NotebookDoc()
    file = NotebookFile(nb, content.path, content.file_hash, content.clean_state)
    persistence = RoomPersistence(store, nb, notebook_id, content.epoch, file)
    file.on_saved = persistence.write_meta
    room = NotebookRoom(notebook_id, content.epoch, nb, file, persistence, on_empty)
    room.load(content.stored_updates, content.notebook)
    if content.notebook is not None:
        file.mark_clean()
    persistence.write_meta()
    if content.notebook is not None:
        persistence.compact()  # the file's content becomes the first snapshot
    persistence.open()
    room.start()
    return room
