"""Durable room documents: a snapshot plus a write-ahead log of updates.

Every update is appended to the active log (one write, before it is broadcast) so a
daemon killed with SIGKILL loses nothing it acknowledged. There are two log files,
``<key>.wal`` and ``<key>.wal.old``, both kept open: compaction swaps which one is
active (on the event loop, no file-system metadata touched: creating or renaming a file
there can wait behind another file's fsync for tens of ms), then, off the loop, writes
the whole state to ``<key>.ydoc`` (temp + fsync + rename) and empties the other log. At
every instant snapshot + both logs hold every update; replaying one twice, or out of
order, is harmless in a CRDT.
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

from runtimed.files import atomic_write

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
        self._active: int | None = None  # fd appends go to
        self._spare: int | None = None  # the other log: empty, or awaiting a snapshot
        self._spare_empty = True
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
        atomic_write(self.meta_path, json.dumps(meta).encode(), sync=False)

    def open(self) -> None:
        """Open (creating) both logs. Appends go to ``.wal``; ``.wal.old`` keeps whatever a
        previous daemon left in it until the next snapshot covers it."""
        if self._active is not None:
            return
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._active = os.open(self.wal_path, flags, 0o600)
        self._spare = os.open(self.old_wal_path, flags, 0o600)
        self._spare_empty = os.fstat(self._spare).st_size == 0
        self.wal_bytes = os.fstat(self._active).st_size

    def append(self, update: bytes) -> None:
        """Log one update; a single write(2), so a killed process leaves whole records."""
        if self._active is None:
            self.open()
        assert self._active is not None
        record = _LEN.pack(len(update)) + update
        os.write(self._active, record)
        self.wal_bytes += len(record)

    def rotate(self) -> int:
        """Make the spare (empty) log the active one; returns the log a snapshot taken now
        must cover, for :meth:`write_snapshot`. Cheap: meant for the event loop.

        When the spare still holds updates (a previous snapshot failed, or a previous
        daemon left them), nothing swaps: the snapshot taken now covers the spare."""
        if self._active is None:
            self.open()
        assert self._active is not None and self._spare is not None
        if not self._spare_empty:
            return self._spare
        covered, self._active, self._spare = self._active, self._spare, self._active
        self._spare_empty = False
        self.wal_bytes = 0
        return covered

    def write_snapshot(self, full_state: bytes, covered: int) -> None:
        """Persist ``full_state`` (taken together with the ``rotate`` that returned
        ``covered``), then empty that log. Blocking (fsync): run it in a thread."""
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.snapshot_path, full_state)
        if covered == self._spare:  # still ours (the store was not closed meanwhile)
            with contextlib.suppress(OSError):
                os.ftruncate(covered, 0)
                self._spare_empty = True

    def compact(self, full_state: bytes) -> None:
        """Snapshot and empty both logs (startup and shutdown, where blocking is fine)."""
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.snapshot_path, full_state)
        if self._active is None:
            for path in (self.wal_path, self.old_wal_path):
                path.unlink(missing_ok=True)
            return
        for fd in (self._active, self._spare):
            if fd is not None:
                os.ftruncate(fd, 0)
        self._spare_empty = True
        self.wal_bytes = 0

    def close(self) -> None:
        for fd in (self._active, self._spare):
            if fd is not None:
                os.close(fd)
        self._active = self._spare = None
        self._spare_empty = True

    def delete(self) -> None:
        self.close()
        for path in (self.snapshot_path, self.wal_path, self.old_wal_path, self.meta_path):
            path.unlink(missing_ok=True)
