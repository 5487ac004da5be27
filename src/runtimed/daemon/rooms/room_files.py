"""Pruning stored room documents nobody will open again.

A room's files (``notebook-docs/<key>.ydoc|.wal|.wal.old|.json``) outlive the room so
that a notebook reopens with its history and unsaved edits. Those of untitled rooms
unused for the grace period, and of notebooks whose file is gone for as long, are
removed; an open room's never are. The blobs only they referred to go with the next
blob collection.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIXES = (".ydoc", ".wal", ".wal.old", ".json")


@dataclass(frozen=True)
class StoredRoomFiles:
    key: str
    notebook_id: str
    path: str | None
    last_used_at: float
    size_bytes: int


def stored_rooms(docs_dir: Path) -> list[StoredRoomFiles]:
    """Every room stored under ``docs_dir`` (blocking)."""
    if not docs_dir.is_dir():
        return []
    found = []
    for meta_path in docs_dir.glob("*.json"):
        key = meta_path.name[: -len(".json")]
        files = [docs_dir / f"{key}{suffix}" for suffix in SUFFIXES]
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        stats = [f.stat() for f in files if f.exists()]
        found.append(
            StoredRoomFiles(
                key=key,
                notebook_id=str(meta.get("notebook_id", "")),
                path=meta.get("path") if isinstance(meta.get("path"), str) else None,
                last_used_at=max((s.st_mtime for s in stats), default=0.0),
                size_bytes=sum(s.st_size for s in stats),
            )
        )
    return found


def prunable(
    rooms: list[StoredRoomFiles], open_ids: set[str], grace_secs: float
) -> list[StoredRoomFiles]:
    """Rooms not open, unused for ``grace_secs``, and untitled or whose file is gone."""
    cutoff = time.time() - grace_secs
    return [
        room
        for room in rooms
        if room.notebook_id not in open_ids
        and room.last_used_at < cutoff
        and (room.path is None or not os.path.exists(room.path))
    ]


def remove_room_files(
    docs_dir: Path, rooms: list[StoredRoomFiles], is_open: Callable[[str], bool]
) -> int:
    """Delete the files of ``rooms`` (skipping any opened meanwhile); returns bytes freed."""
    freed = 0
    for room in rooms:
        if is_open(room.notebook_id):
            continue
        for suffix in SUFFIXES:
            (docs_dir / f"{room.key}{suffix}").unlink(missing_ok=True)
        freed += room.size_bytes
        log.info("pruned the stored room of %s", room.path or room.notebook_id)
    return freed
