"""A damaged stored room never costs the notebook (issue 32), in-process: each stored file
(snapshot, log, old log, meta) damaged each way (random bytes, truncated, zero length,
valid Yjs of another document, another room's file) still opens as the file's cells, and
saving keeps them; what fails its checks is kept aside and named in one warning; a log
cut anywhere keeps the records before the cut; stores of the previous format still load.
No daemon."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import notebook_sources, write_notebook
from runtimed.daemon.rooms.notebook_file import read_ipynb
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_loading import load_room
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.daemon.rooms.room_store import RoomStore, StoredRoom
from runtimed.daemon.rooms.store_format import (
    FORMAT,
    SNAPSHOT_MAGIC,
    read_log,
    read_snapshot,
    room_seed,
)
from runtimed.documents.notebook import NotebookDoc
from runtimed.protocol.handshake import Handshake

FILE_CELLS = ["a = 1", "b = 2", "c = 3"]


def _sources(room: NotebookRoom) -> list[str]:
    return [c.source for c in room.nb.get_cells()]


@dataclass(frozen=True)
class Image:
    """The files a daemon killed with unsaved edits leaves: the snapshot holds the file,
    the old log one unsaved cell, the log more (``boundaries``: its record ends)."""

    path: Path
    docs: Path
    files: dict[str, bytes]  # suffix -> content
    boundaries: list[int]

    def store(self, docs: Path | None = None) -> RoomStore:
        return RoomStore(docs or self.docs, str(self.path))

    def write(self, docs: Path | None = None) -> RoomStore:
        store = self.store(docs)
        store.docs_dir.mkdir(parents=True, exist_ok=True)
        for path in store.paths:
            path.unlink(missing_ok=True)
        for suffix, data in self.files.items():
            store.docs_dir.joinpath(store.meta_path.stem + suffix).write_bytes(data)
        return store


async def _killed_image(tmp: Path, name: str, cells: list[str], unsaved: int = 2) -> Image:
    """Open ``name`` (``cells``), add ``unsaved`` cells, and take the files as SIGKILL
    would leave them at that instant (no await between: nothing compacts)."""
    path = tmp / name
    write_notebook(path, *cells)
    docs = tmp / f"docs-{name}"
    registry = RoomRegistry(docs, lambda: 60.0)
    room = await registry.open(Handshake(channel="open_notebook", path=str(path)))
    store = RoomStore(docs, room.notebook_id)
    room.nb.insert_cell(None, f"{name} unsaved 1")
    old_log = store.wal_path.read_bytes()
    boundaries = [0]
    for i in range(2, unsaved + 1):
        room.nb.insert_cell(None, f"{name} unsaved {i}")
        boundaries.append(store.wal_path.stat().st_size - len(old_log))
    log = store.wal_path.read_bytes()[len(old_log) :]
    files = {
        ".json": store.meta_path.read_bytes(),
        ".ydoc": store.snapshot_path.read_bytes(),
        ".wal.old": old_log,  # as a rotation between the two edits leaves them
        ".wal": log,
    }
    await registry.close_all()
    return Image(Path(room.notebook_id), docs, files, boundaries)


def _foreign_update() -> bytes:
    """Valid Yjs: the whole state of another notebook document."""
    nb = NotebookDoc()
    nb.ensure_meta()
    nb.insert_cell(None, "foreign")
    return nb.doc.get_update()


SUFFIXES = [".ydoc", ".wal", ".wal.old", ".json"]
DAMAGES = ["random bytes", "truncated", "zero length", "valid Yjs of another document"]
DAMAGES += ["another room's file"]


def _damaged(data: bytes, damage: str, other: bytes) -> bytes:
    if damage == "random bytes":
        return random.Random(32).randbytes(300)
    if damage == "truncated":
        return data[: len(data) // 2]
    if damage == "zero length":
        return b""
    if damage == "valid Yjs of another document":
        return _foreign_update()
    return other


async def _open(image: Image) -> tuple[RoomRegistry, NotebookRoom]:
    registry = RoomRegistry(image.docs, lambda: 60.0)
    room = await registry.open(Handshake(channel="open_notebook", path=str(image.path)))
    return registry, room


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("suffix", SUFFIXES)
async def test_a_damaged_stored_file_never_costs_the_files_cells(
    tmp_path: Path, suffix: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    image = await _killed_image(tmp_path, "mine.ipynb", FILE_CELLS)
    other = await _killed_image(tmp_path, "other.ipynb", ["foreign"])
    store = image.write()
    damaged = _damaged(image.files[suffix], damage, other.files[suffix])
    store.docs_dir.joinpath(store.meta_path.stem + suffix).write_bytes(damaged)
    caplog.clear()
    caplog.set_level(logging.WARNING)

    registry, room = await _open(image)
    sources = _sources(room)
    assert sources[:3] == FILE_CELLS  # the file's cells, whatever else was readable
    assert not any("foreign" in s for s in sources)
    if suffix in (".ydoc", ".json"):
        assert sources == FILE_CELLS  # nothing of a damaged history is trusted
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    kept = sorted(p.name for p in store.docs_dir.glob("*.corrupt-*"))
    if damage == "zero length" and suffix in (".wal", ".wal.old"):
        # An empty log passes every check (a log with nothing in it); the room skips, as
        # always, records of the other log that build on what the emptied one held.
        assert kept == [] and all("skipping a stored update" in w for w in warnings)
    else:
        aside = [n for n in kept if n.startswith(f"{store.meta_path.stem}{suffix}.corrupt-")]
        assert len(aside) == 1, kept
        assert store.docs_dir.joinpath(aside[0]).read_bytes() == damaged  # kept as found
        assert len(warnings) == 1 and all(name in warnings[0] for name in kept), warnings

    room.nb.insert_cell(None, "new")
    room.file.save(None)
    saved = notebook_sources(image.path)
    assert saved[:3] == FILE_CELLS and saved[-1] == "new"
    await registry.close_all()

    again, reopened = await _open(image)  # what was rewritten is whole again
    assert _sources(reopened) == saved and not reopened.file.dirty
    await again.close_all()


async def test_an_intact_store_keeps_every_unsaved_edit(tmp_path: Path) -> None:
    image = await _killed_image(tmp_path, "mine.ipynb", FILE_CELLS, unsaved=3)
    image.write()
    registry, room = await _open(image)
    unsaved = [f"mine.ipynb unsaved {i}" for i in (1, 2, 3)]
    assert _sources(room) == FILE_CELLS + unsaved and room.file.dirty
    assert list(image.docs.glob("*.corrupt-*")) == []
    await registry.close_all()


async def test_a_log_missing_what_the_file_was_saved_with_yields_to_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every record checks out, but the log lost records the file was saved with (the
    document does not reach its clean state): the file is the better copy."""
    path = tmp_path / "a.ipynb"
    write_notebook(path, *FILE_CELLS)
    registry = RoomRegistry(tmp_path / "docs", lambda: 60.0)
    room = await registry.open(Handshake(channel="open_notebook", path=str(path)))
    store = RoomStore(tmp_path / "docs", room.notebook_id)
    room.nb.insert_cell(None, "saved")
    room.file.save(None)
    image = {p: p.read_bytes() for p in store.paths}
    await registry.close_all()
    for p, data in image.items():
        p.write_bytes(data)
    store.wal_path.write_bytes(b"")  # the records of "saved" are gone

    again = RoomRegistry(tmp_path / "docs", lambda: 60.0)
    reopened = await again.open(Handshake(channel="open_notebook", path=str(path)))
    assert _sources(reopened) == [*FILE_CELLS, "saved"]
    assert "lacks updates" in caplog.text and list(store.docs_dir.glob("*.corrupt-*"))
    await again.close_all()


async def _load(image: Image, docs: Path) -> list[str]:
    room = await load_room(docs, str(image.path), str(image.path), _read, lambda room: None)
    sources = _sources(room)
    await room.close()
    return sources


async def _read(path: Path) -> tuple[dict[str, object], str]:
    return read_ipynb(path)


@pytest.fixture(scope="module")
def five_edits(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """A log of five records (cells "unsaved 2" to "unsaved 6")."""
    tmp = tmp_path_factory.mktemp("cut")
    image = asyncio.run(_killed_image(tmp, "cut.ipynb", FILE_CELLS, unsaved=6))
    assert len(image.boundaries) == 6 and image.boundaries[-1] == len(image.files[".wal"])
    return image


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_log_cut_anywhere_keeps_the_records_before_the_cut(
    five_edits: Image, data: st.DataObject
) -> None:
    log = five_edits.files[".wal"]
    cut = data.draw(st.integers(0, len(log)), label="cut")
    whole = sum(1 for end in five_edits.boundaries[1:] if end <= cut)
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        store = five_edits.write(docs)
        store.wal_path.write_bytes(log[:cut])
        stored = store.load()
        assert isinstance(stored, StoredRoom)
        assert (store.wal_path in stored.damaged) == (cut not in five_edits.boundaries)
        sources = asyncio.run(_load(five_edits, docs))
    unsaved = [f"cut.ipynb unsaved {i}" for i in range(1, 2 + whole)]
    assert sources == FILE_CELLS + unsaved


def _legacy(image: Image) -> dict[str, bytes]:
    """The image as the previous version wrote it: no checksums, no format in the meta."""
    meta = json.loads(image.files[".json"])
    seed = room_seed(str(image.path), meta["epoch"])
    for name in ("format", "file_cells", "cells_deleted"):
        del meta[name]
    files = {
        ".json": json.dumps(meta).encode(),
        ".ydoc": read_snapshot(image.files[".ydoc"], seed, legacy=False),
    }
    for suffix in (".wal.old", ".wal"):
        records = read_log(image.files[suffix], seed, legacy=False).records
        files[suffix] = b"".join(struct.pack(">I", len(r)) + r for r in records)
    return files


async def test_a_store_of_the_previous_format_still_loads_and_is_rewritten(
    tmp_path: Path,
) -> None:
    image = await _killed_image(tmp_path, "old.ipynb", FILE_CELLS)
    legacy = Image(image.path, image.docs, _legacy(image), image.boundaries)
    store = legacy.write()
    registry, room = await _open(legacy)
    assert _sources(room) == [*FILE_CELLS, "old.ipynb unsaved 1", "old.ipynb unsaved 2"]
    assert list(store.docs_dir.glob("*.corrupt-*")) == []
    assert json.loads(store.meta_path.read_bytes())["format"] == FORMAT
    assert store.snapshot_path.read_bytes().startswith(SNAPSHOT_MAGIC)
    await registry.close_all()


@pytest.mark.parametrize("suffix", [".ydoc", ".wal"])
async def test_a_damaged_store_of_the_previous_format_is_set_aside(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    image = await _killed_image(tmp_path, "old.ipynb", FILE_CELLS)
    files = _legacy(image)
    files[suffix] = files[suffix][:-3]  # a cut update no longer decodes
    legacy = Image(image.path, image.docs, files, image.boundaries)
    store = legacy.write()
    registry, room = await _open(legacy)
    assert _sources(room)[:3] == FILE_CELLS
    kept = [p.name for p in store.docs_dir.glob("*.corrupt-*")]
    assert any(name.startswith(store.meta_path.stem + suffix + ".corrupt") for name in kept)
    assert "damaged" in caplog.text
    await registry.close_all()
