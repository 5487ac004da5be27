"""RoomStore: every acknowledged update survives compaction, a failed snapshot and a crash
at any point in between (two logs that swap roles, a snapshot that empties one)."""

from __future__ import annotations

from pathlib import Path

import pycrdt
import pytest

from runtimed.daemon.rooms.room_store import RoomStore, StoredRoom


def _texts(store: RoomStore) -> str:
    stored = store.load()
    assert isinstance(stored, StoredRoom) and not stored.damaged
    doc: pycrdt.Doc = pycrdt.Doc()
    text = doc.get("t", type=pycrdt.Text)
    for update in stored.updates:
        doc.apply_update(update)
    return str(text)


class Writer:
    """A document whose every update goes to the store, as a room does."""

    def __init__(self, store: RoomStore) -> None:
        self.store = store
        self.doc: pycrdt.Doc = pycrdt.Doc()
        self.text = self.doc.get("t", type=pycrdt.Text)
        self.doc.observe(lambda event: store.append(event.update))

    def type(self, chars: str) -> None:
        for char in chars:
            self.text += char


def _store(path: Path) -> RoomStore:
    """A store as a room opens it: snapshot, then the meta naming its epoch, then logs."""
    store = RoomStore(path, "nb")
    store.bind("epoch-1")
    if not store.meta_path.exists():
        store.compact(pycrdt.Doc().get_update())
    store.write_meta({"notebook_id": "nb", "epoch": "epoch-1"})
    store.open()
    return store


def test_updates_survive_rotation_snapshot_and_crash_between(tmp_path: Path) -> None:
    store = _store(tmp_path)
    w = Writer(store)
    w.type("abc")
    covered = store.rotate()  # a crash here: snapshot missing, both logs hold everything
    w.type("def")
    assert _texts(RoomStore(tmp_path, "nb")) == "abcdef"
    store.write_snapshot(w.doc.get_update(), covered)
    w.type("ghi")
    assert _texts(RoomStore(tmp_path, "nb")) == "abcdefghi"
    assert store.old_wal_path.stat().st_size == 0 or store.wal_path.stat().st_size == 0
    # The emptied log becomes the active one at the next rotation; nothing is lost.
    covered = store.rotate()
    w.type("jkl")
    store.write_snapshot(w.doc.get_update(), covered)
    assert _texts(RoomStore(tmp_path, "nb")) == "abcdefghijkl"
    store.close()


def test_failed_snapshot_keeps_its_log_and_the_next_one_covers_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    w = Writer(store)
    w.type("one ")
    covered = store.rotate()
    w.type("two ")
    previous = store.snapshot_path.read_bytes()
    store.snapshot_path.unlink()
    store.snapshot_path.mkdir()  # the snapshot cannot be written: rename onto a dir fails
    with pytest.raises(OSError):
        store.write_snapshot(w.doc.get_update(), covered)
    store.snapshot_path.rmdir()
    store.snapshot_path.write_bytes(previous)  # as the failed rename leaves it
    assert _texts(RoomStore(tmp_path, "nb")) == "one two "
    again = store.rotate()  # the spare still holds "one ": no swap, it is covered now
    assert again == covered
    w.type("three")
    store.write_snapshot(w.doc.get_update(), again)
    assert _texts(RoomStore(tmp_path, "nb")) == "one two three"
    store.close()


def test_leftovers_of_a_killed_daemon_are_kept_until_a_snapshot_covers_them(
    tmp_path: Path,
) -> None:
    first = _store(tmp_path)
    w = Writer(first)
    w.type("left")
    first.rotate()  # killed after the swap, before the snapshot
    w.type("over")
    # no close(): a SIGKILLed daemon closes nothing
    second = _store(tmp_path)
    replay = Writer(second)
    for update in second.load().updates:  # type: ignore[union-attr]
        replay.doc.apply_update(update)
    assert str(replay.text) == "leftover"
    covered = second.rotate()
    second.write_snapshot(replay.doc.get_update(), covered)
    replay.type("!")
    assert _texts(RoomStore(tmp_path, "nb")) == "leftover!"
    second.close()
    first.close()
