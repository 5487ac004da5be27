"""Durable room documents: a snapshot plus a write-ahead log of updates.

Every update is appended to ``<key>.wal`` (one write, before it is broadcast) so a daemon
killed with SIGKILL loses nothing it acknowledged. Compaction writes the whole state to
``<key>.ydoc`` (temp + rename) and empties the log, which bounds the files' size.
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
        updates.extend(self._read_wal())
        return StoredRoom(meta=meta, updates=[u for u in updates if u])

    def _read_wal(self) -> list[bytes]:
        try:
            data = self.wal_path.read_bytes()
        except FileNotFoundError:
            return []
        out, pos = [], 0
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + n > len(data):
                log.warning("%s: dropping a torn last record", self.wal_path.name)
                break
            out.append(data[pos + _LEN.size : pos + _LEN.size + n])
            pos += _LEN.size + n
        return out

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic_write(self.meta_path, json.dumps(meta).encode())

    def append(self, update: bytes) -> None:
        """Log one update; a single write(2), so a killed process leaves whole records."""
        if self._wal_fd is None:
            self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._wal_fd = os.open(self.wal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        record = _LEN.pack(len(update)) + update
        os.write(self._wal_fd, record)
        self.wal_bytes += len(record)

    def compact(self, full_state: bytes) -> None:
        """Replace snapshot + log with one snapshot of ``full_state``."""
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic_write(self.snapshot_path, full_state)
        if self._wal_fd is not None:
            os.ftruncate(self._wal_fd, 0)
        else:
            self.wal_path.unlink(missing_ok=True)
        self.wal_bytes = 0

    def close(self) -> None:
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    def delete(self) -> None:
        self.close()
        for path in (self.snapshot_path, self.wal_path, self.meta_path):
            path.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
