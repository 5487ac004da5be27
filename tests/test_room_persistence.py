"""RoomPersistence in-process: every update logged, compaction after a burst or past the
log limit, one snapshot at a time, a failed snapshot retried, the stored meta. No daemon."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runtimed.daemon.rooms.notebook_file import NotebookFile
from runtimed.daemon.rooms.room_persistence import RoomPersistence
from runtimed.daemon.rooms.room_store import RoomStore, StoredRoom
from runtimed.documents.notebook import NotebookDoc


class SlowSnapshots(RoomStore):
    """A store whose snapshot writes wait until the test lets them go."""

    def __init__(self, docs_dir: Path, notebook_id: str) -> None:
        super().__init__(docs_dir, notebook_id)
        self.release = threading.Event()
        self.snapshots = 0

    def write_snapshot(self, full_state: bytes, covered: int) -> None:
        self.release.wait(10)
        self.snapshots += 1
        super().write_snapshot(full_state, covered)


def _persistence(
    store: RoomStore, after_bytes: int = 1 << 20, delay: float = 0.05
) -> tuple[RoomPersistence, NotebookDoc]:
    nb = NotebookDoc()
    file = NotebookFile(nb)
    persistence = RoomPersistence(store, nb, "nb", "epoch-1", file, after_bytes, delay)
    nb.doc.observe(lambda event: persistence.append(event.update))
    persistence.compact()  # as a room opens: the snapshot its meta vouches for first
    persistence.write_meta()
    persistence.open()
    return persistence, nb


def _sources(docs: Path) -> list[str]:
    """The cells a daemon started now would load."""
    stored = RoomStore(docs, "nb").load()
    assert isinstance(stored, StoredRoom) and not stored.damaged
    nb = NotebookDoc()
    for update in stored.updates:
        nb.doc.apply_update(update)
    return [c.source for c in nb.get_cells()]


async def _until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _snapshot_written(store: RoomStore) -> bool:
    """A snapshot beyond the empty one the room opened with, and a log it emptied."""
    emptied = store.wal_path.stat().st_size == 0 or store.old_wal_path.stat().st_size == 0
    return store.snapshot_path.is_file() and store.snapshot_path.stat().st_size > 30 and emptied


async def test_every_update_is_in_the_log_at_once(tmp_path: Path) -> None:
    store = RoomStore(tmp_path, "nb")
    persistence, nb = _persistence(store, delay=60)
    nb.insert_cell(None, "a")
    nb.insert_cell(None, "b")
    assert store.wal_bytes > 0  # nothing compacted yet: the log holds it
    assert _sources(tmp_path) == ["a", "b"]
    await persistence.close()


async def test_a_burst_is_compacted_after_the_delay(tmp_path: Path) -> None:
    store = RoomStore(tmp_path, "nb")
    persistence, nb = _persistence(store, delay=0.05)
    for i in range(20):
        nb.insert_cell(None, f"cell {i}")
    await _until(lambda: _snapshot_written(store), "the snapshot")
    assert _sources(tmp_path) == [f"cell {i}" for i in range(20)]
    await persistence.close()


async def test_a_long_log_is_compacted_at_once(tmp_path: Path) -> None:
    store = RoomStore(tmp_path, "nb")
    persistence, nb = _persistence(store, after_bytes=100, delay=60)
    nb.insert_cell(None, "x" * 200)  # compaction cannot run inside the update's transaction
    await asyncio.sleep(0)  # the next loop turn: the logs swapped
    assert store.wal_bytes == 0
    await _until(lambda: _snapshot_written(store), "the snapshot")
    assert _sources(tmp_path) == ["x" * 200]
    await persistence.close()


async def test_one_snapshot_at_a_time(tmp_path: Path) -> None:
    store = SlowSnapshots(tmp_path, "nb")
    persistence, nb = _persistence(store, after_bytes=100, delay=0.05)
    nb.insert_cell(None, "first " * 40)
    await asyncio.sleep(0)  # the logs swapped; the snapshot waits in its thread
    assert store.wal_bytes == 0
    nb.insert_cell(None, "second " * 40)
    await asyncio.sleep(0)  # over the limit again, but it must wait its turn
    assert store.wal_bytes > 0
    assert _sources(tmp_path) == ["first " * 40, "second " * 40]
    store.release.set()
    await _until(lambda: store.snapshots == 2 and store.wal_bytes == 0, "the second snapshot")
    await persistence.close()
    assert _sources(tmp_path) == ["first " * 40, "second " * 40]


async def test_a_failed_snapshot_is_retried_by_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RoomStore(tmp_path, "nb")
    persistence, nb = _persistence(store, after_bytes=100, delay=0.05)
    previous = store.snapshot_path.read_bytes()
    store.snapshot_path.unlink()
    store.snapshot_path.mkdir()  # the snapshot cannot replace a directory
    nb.insert_cell(None, "kept " * 30)
    await _until(lambda: "cannot write the snapshot of nb" in caplog.text, "the failure")
    store.snapshot_path.rmdir()
    store.snapshot_path.write_bytes(previous)  # as a failed rename leaves it
    assert _sources(tmp_path) == ["kept " * 30]  # its log still holds the update
    nb.insert_cell(None, "next " * 30)
    await _until(lambda: _snapshot_written(store), "the retried snapshot")
    await persistence.close()
    assert _sources(tmp_path) == ["kept " * 30, "next " * 30]


async def test_close_leaves_one_snapshot_and_empty_logs(tmp_path: Path) -> None:
    store = RoomStore(tmp_path, "nb")
    persistence, nb = _persistence(store, delay=60)
    nb.insert_cell(None, "a")
    await persistence.close()
    assert store.wal_path.stat().st_size == 0 and store.old_wal_path.stat().st_size == 0
    assert _sources(tmp_path) == ["a"]


async def test_the_meta_follows_the_file(tmp_path: Path) -> None:
    store = RoomStore(tmp_path, "nb")
    persistence, nb = _persistence(store, delay=60)
    assert store.load().meta == {  # type: ignore[union-attr]
        "notebook_id": "nb",
        "epoch": "epoch-1",
        "path": None,
        "file_hash": None,
        "clean_state": None,
        "file_cells": None,
        "cells_deleted": 0,
        "format": 2,
    }
    persistence.file.on_meta_changed = persistence.write_meta
    nb.ensure_meta()
    target = tmp_path / "saved.ipynb"
    persistence.file.save(str(target))
    meta = store.load().meta  # type: ignore[union-attr]
    assert meta["path"] == str(target)
    assert meta["clean_state"] == nb.doc.get_state().hex()
    await persistence.close()


def test_the_snapshot_holds_the_whole_document(tmp_path: Path) -> None:
    """Compaction outside a loop (opening, closing) is a plain blocking snapshot."""
    store = RoomStore(tmp_path, "nb")
    nb = NotebookDoc()
    persistence = RoomPersistence(store, nb, "nb", "e", NotebookFile(nb))
    persistence.write_meta()
    nb.insert_cell(None, "before the logs opened")
    persistence.compact()
    persistence.open()
    stored = RoomStore(tmp_path, "nb").load()
    assert isinstance(stored, StoredRoom) and len(stored.updates) == 1  # the snapshot alone
    assert _sources(tmp_path) == ["before the logs opened"]
    store.close()
