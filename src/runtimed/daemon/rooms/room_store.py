"""Durable room documents: a snapshot plus a write-ahead log of updates.

Every update is appended to ``<key>.wal`` (one write, before it is broadcast) so a daemon
killed with SIGKILL loses nothing it acknowledged. Compaction bounds the files' size in two
steps: on the event loop the log is rotated (``.wal`` -> ``.wal.old``, new appends start a
fresh ``.wal``); then, off the loop, the whole state is written to ``<key>.ydoc`` (temp +
fsync + rename) and ``.wal.old`` is deleted. At every instant snapshot + old log + log hold
every update (replaying one twice is harmless in a CRDT).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_LEN = struct.Struct(">I")


def room_key(notebook_id: str) -> str:
    """A fixed-shape file name for any notebook id: nothing a caller sends touches a path."""
    return hashlib.sha256(notebook_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StoredRoom:
    meta: dict[str, Any]
    updates: list[bytes]


class RoomStore:
    """Files of one room under ``notebook-docs/``."""

    def __init__(self, docs_dir: Path, notebook_id: str) -> None:
        self.docs_dir = docs_dir
        key = room_key(notebook_id)
        self.snapshot_path = docs_dir / f"{key}.ydoc"
        self.wal_path = docs_dir / f"{key}.wal"
        self.old_wal_path = docs_dir / f"{key}.wal.old"
        self.meta_path = docs_dir / f"{key}.json"
        self._wal_fd: int | None = None
        self.wal_bytes = 0

    def load(self) -> StoredRoom | None:
        """The persisted meta and updates (snapshot first), or None if never stored."""
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        updates: list[bytes] = []
        with contextlib.suppress(FileNotFoundError):
            updates.append(self.snapshot_path.read_bytes())
        updates.extend(self._read_wal(self.old_wal_path))
        updates.extend(self._read_wal(self.wal_path))
        return StoredRoom(meta=meta, updates=[u for u in updates if u])

    @staticmethod
    def _read_wal(path: Path) -> list[bytes]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        out, pos = [], 0
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + n > len(data):
                log.warning("%s: dropping a torn last record", path.name)
                break
            out.append(data[pos + _LEN.size : pos + _LEN.size + n])
            pos += _LEN.size + n
        return out

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Rewritten from the room on every open: atomic is enough, no fsync on this path.
        _atomic_write(self.meta_path, json.dumps(meta).encode(), sync=False)

    def append(self, update: bytes) -> None:
        """Log one update; a single write(2), so a killed process leaves whole records."""
        if self._wal_fd is None:
            self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._wal_fd = os.open(self.wal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        record = _LEN.pack(len(update)) + update
        os.write(self._wal_fd, record)
        self.wal_bytes += len(record)

    def rotate(self) -> None:
        """Start a fresh log; the current one becomes ``.wal.old`` until a snapshot that
        covers it is written. Cheap: meant for the event loop."""
        self.close()
        if self.wal_path.exists():
            if self.old_wal_path.exists():  # an earlier snapshot never finished: keep both
                with self.old_wal_path.open("ab") as old:
                    old.write(self.wal_path.read_bytes())
                self.wal_path.unlink()
            else:
                os.replace(self.wal_path, self.old_wal_path)
        self.wal_bytes = 0

    def write_snapshot(self, full_state: bytes) -> None:
        """Persist ``full_state`` (taken before the last ``rotate``) and drop the old log.
        Blocking (fsync): run it in a thread."""
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic_write(self.snapshot_path, full_state)
        self.old_wal_path.unlink(missing_ok=True)

    def compact(self, full_state: bytes) -> None:
        """Both steps at once (startup and shutdown, where blocking is fine)."""
        self.rotate()
        self.write_snapshot(full_state)

    def close(self) -> None:
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    def delete(self) -> None:
        self.close()
        for path in (self.snapshot_path, self.wal_path, self.old_wal_path, self.meta_path):
            path.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes, sync: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
