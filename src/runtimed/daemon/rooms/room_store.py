"""Durable room documents: a snapshot plus a write-ahead log of updates.

Every update is appended to the active log (one write, before it is broadcast) so a
daemon killed with SIGKILL loses nothing it acknowledged. There are two log files,
``<key>.wal`` and ``<key>.wal.old``, both kept open: compaction swaps which one is
active (on the event loop, no file-system metadata touched: creating or renaming a file
there can wait behind another file's fsync for tens of ms), then, off the loop, writes
the whole state to ``<key>.ydoc`` (temp + fsync + rename) and empties the other log. At
every instant snapshot + both logs hold every update; replaying one twice, or out of
order, is harmless in a CRDT.

The snapshot and every record carry a checksum bound to the room (``store_format``), and
``<key>.json`` (the meta) names the room and its epoch: ``load`` reports what fails its
checks instead of handing out a damaged document, and ``set_aside`` keeps such files as
``*.corrupt-<time>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtimed.daemon.rooms.store_format import (
    FORMAT,
    Damaged,
    log_record,
    read_log,
    read_snapshot,
    room_seed,
    snapshot_bytes,
)
from runtimed.files import atomic_write

log = logging.getLogger(__name__)


def room_key(notebook_id: str) -> str:
    """A fixed-shape file name for any notebook id: nothing a caller sends touches a path."""
    return hashlib.sha256(notebook_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StoredRoom:
    """A stored room whose meta and snapshot passed their checks.

    ``updates``: the snapshot, then the log records up to the first damaged one;
    ``damaged``: the logs not read to their end, and why; ``legacy``: written before
    checksums.
    """

    meta: dict[str, Any]
    updates: list[bytes]
    damaged: dict[Path, str] = field(default_factory=dict)
    legacy: bool = False


@dataclass(frozen=True)
class DamagedRoom:
    """A stored room whose meta or snapshot failed its checks (file: why): its document
    cannot be trusted, nor its logs, which are updates to that snapshot."""

    damaged: dict[Path, str]


class RoomStore:
    """Files of one room under ``notebook-docs/``."""

    def __init__(self, docs_dir: Path, notebook_id: str) -> None:
        self.docs_dir = docs_dir
        self.notebook_id = notebook_id
        key = room_key(notebook_id)
        self.snapshot_path = docs_dir / f"{key}.ydoc"
        self.wal_path = docs_dir / f"{key}.wal"
        self.old_wal_path = docs_dir / f"{key}.wal.old"
        self.meta_path = docs_dir / f"{key}.json"
        self._seed: int | None = None  # what the checksums start from (``bind``)
        self._active: int | None = None  # fd appends go to
        self._spare: int | None = None  # the other log: empty, or awaiting a snapshot
        self._spare_empty = True
        self.wal_bytes = 0

    @property
    def paths(self) -> tuple[Path, ...]:
        """The room's files: meta, snapshot and both logs."""
        return (self.meta_path, self.snapshot_path, self.old_wal_path, self.wal_path)

    def bind(self, epoch: str) -> None:
        """Write the history ``epoch`` of the room from now on (the checksums name it)."""
        self._seed = room_seed(self.notebook_id, epoch)

    @property
    def seed(self) -> int:
        if self._seed is None:
            raise RuntimeError("RoomStore.bind(epoch) must come before writing")
        return self._seed

    # --- reading -------------------------------------------------------------------

    def load(self) -> StoredRoom | DamagedRoom | None:
        """The stored room (snapshot first, then the readable log records), the files
        that make it unusable, or None if nothing was ever stored. Blocking."""
        try:
            raw = self.meta_path.read_bytes()
        except FileNotFoundError:
            if any(_size(path) for path in self.paths[1:]):
                return DamagedRoom({self.meta_path: "missing"})
            return None
        except OSError as exc:
            return DamagedRoom({self.meta_path: f"unreadable ({exc.strerror})"})
        try:
            meta = self._checked_meta(raw)
        except Damaged as exc:
            return DamagedRoom({self.meta_path: str(exc)})
        legacy = meta.get("format") is None
        seed = room_seed(self.notebook_id, str(meta.get("epoch") or ""))
        updates: list[bytes] = []
        try:
            updates.append(read_snapshot(self.snapshot_path.read_bytes(), seed, legacy))
        except FileNotFoundError:
            if not legacy:  # format 2 writes the snapshot before its meta
                return DamagedRoom({self.snapshot_path: "missing"})
        except (OSError, Damaged) as exc:
            return DamagedRoom({self.snapshot_path: _why(exc)})
        # The logs are one sequence (old, then active): what follows a damaged record
        # may build on it, so the document is the one before the first damage.
        damaged: dict[Path, str] = {}
        for path in (self.old_wal_path, self.wal_path):
            if damaged:
                if _size(path):
                    damaged[path] = "not read: it follows a damaged log"
                continue
            try:
                content = read_log(_read_if_any(path), seed, legacy)
            except OSError as exc:
                damaged[path] = _why(exc)
                continue
            updates.extend(content.records)
            if content.damage is not None:
                damaged[path] = f"{content.damage}, after {len(content.records)} good records"
        return StoredRoom(meta, updates, damaged, legacy)

    def _checked_meta(self, raw: bytes) -> dict[str, Any]:
        try:
            meta = json.loads(raw)
        except ValueError:
            raise Damaged("not JSON" if raw else "empty") from None
        if not isinstance(meta, dict):
            raise Damaged("not a JSON object")
        if meta.get("notebook_id") != self.notebook_id:
            raise Damaged("belongs to another notebook")
        if meta.get("format") not in (None, FORMAT):
            raise Damaged(f"format {meta.get('format')!r} is not one this version reads")
        for name in ("epoch", "path", "file_hash", "clean_state"):
            if meta.get(name) is not None and not isinstance(meta[name], str):
                raise Damaged(f"{name} is not a string")
        if meta.get("format") == FORMAT and not meta.get("epoch"):
            raise Damaged("no epoch")
        return meta

    def set_aside(self, paths: list[Path]) -> list[Path]:
        """Rename ``paths`` to ``<name>.corrupt-<time>`` (kept for recovery, never read
        again); returns the new names of those that existed."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        kept = []
        for path in paths:
            target = path.with_name(f"{path.name}.corrupt-{stamp}")
            n = 1
            while target.exists():
                n += 1
                target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            try:
                path.rename(target)
            except FileNotFoundError:
                continue
            kept.append(target)
        return kept

    def set_aside_all(self, damaged: dict[Path, str]) -> list[Path]:
        """Set aside the damaged files and, since they belong with them, the room's other
        non-empty files; remove the empty ones. Returns the names kept."""
        self.close()
        keep = [p for p in self.paths if p in damaged or _size(p)]
        kept = self.set_aside(keep)
        for path in self.paths:
            path.unlink(missing_ok=True)
        return kept

    # --- writing -------------------------------------------------------------------

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Write the room's meta (and the store's format). The caller binds the epoch it
        names (``bind``)."""
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Rewritten from the room on every open: atomic is enough, no fsync on this path.
        data = json.dumps({**meta, "format": FORMAT}).encode()
        atomic_write(self.meta_path, data, sync=False)

    def open(self) -> None:
        """Open (creating) both logs. Appends go to ``.wal``; ``.wal.old`` keeps whatever a
        previous daemon left in it until the next snapshot covers it."""
        if self._active is not None:
            return
        self.seed  # noqa: B018 -- raises unless bound: every record names the epoch
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._active = os.open(self.wal_path, flags, 0o600)
        self._spare = os.open(self.old_wal_path, flags, 0o600)
        self._spare_empty = os.fstat(self._spare).st_size == 0
        self.wal_bytes = os.fstat(self._active).st_size

    def append(self, update: bytes) -> None:
        """Log one update; a single write(2), so a killed process leaves whole records
        (and a torn one fails its checksum)."""
        if not update:
            return  # nothing to log; an empty record would read as a torn one
        if self._active is None:
            self.open()
        assert self._active is not None and self._seed is not None  # open() checks bind()
        record = log_record(update, self._seed)
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
        atomic_write(self.snapshot_path, snapshot_bytes(full_state, self.seed))
        if covered == self._spare:  # still ours (the store was not closed meanwhile)
            with contextlib.suppress(OSError):
                os.ftruncate(covered, 0)
                self._spare_empty = True

    def compact(self, full_state: bytes, *, sync: bool = True) -> None:
        """Snapshot and empty both logs (startup and shutdown, where blocking is fine).
        ``sync=False``: no fsync, for a state kept elsewhere too (see ``room_loading``)."""
        self.docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.snapshot_path, snapshot_bytes(full_state, self.seed), sync=sync)
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
        for path in self.paths:
            path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_if_any(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _why(exc: OSError | Damaged) -> str:
    return str(exc) if isinstance(exc, Damaged) else f"unreadable ({exc.strerror})"
