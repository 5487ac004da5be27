"""Saving never replaces a notebook file with a document that lost cells nobody deleted
(issue 32): ``cells_lost`` names both counts, ``force`` overrides, and deletions by any
peer or by the daemon count as deliberate, across a restart too. No daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
from pycrdt import Doc, create_update_message

from helpers import MemoryConnection, notebook_sources, write_notebook
from runtimed.daemon.rooms.notebook_file import NotebookFile, file_hash
from runtimed.daemon.rooms.peer import Peer
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.daemon.rooms.room_store import RoomStore
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError
from runtimed.protocol.frames import FrameType
from runtimed.protocol.handshake import Handshake

CELLS = ["a = 1", "b = 2", "c = 3"]


def _lost_all_but_one(path: Path, file_cells: int | None, cells_deleted: int = 0) -> NotebookFile:
    """The file of a document that came back with one cell where its file has three (as
    a damaged store once made it), the file itself unchanged."""
    nb = NotebookDoc()
    nb.ensure_meta()
    nb.insert_cell(None, "new")
    file = NotebookFile(
        nb, str(path), file_hash(path), file_cells=file_cells, cells_deleted=cells_deleted
    )
    file.watch_cells()
    return file


@pytest.mark.parametrize("file_cells", [3, None], ids=["counted", "counted from the file"])
def test_a_document_that_lost_cells_does_not_replace_its_file(
    tmp_path: Path, file_cells: int | None
) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, *CELLS)
    file = _lost_all_but_one(path, file_cells)
    with pytest.raises(RuntimedError) as refused:
        file.save(None)
    assert refused.value.code == "cells_lost"
    assert "the file has 3 cells, the notebook 1" in refused.value.message
    assert "no cell was deleted" in refused.value.message
    assert "force=True" in refused.value.message
    assert notebook_sources(path) == CELLS
    file.save(None, force=True)  # the user's call
    assert notebook_sources(path) == ["new"]
    assert file.file_cells == 1 and file.cells_deleted == 0


def test_fewer_deletions_than_missing_cells_is_still_a_loss(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, *CELLS)
    with pytest.raises(RuntimedError, match="only 1 were deleted") as refused:
        _lost_all_but_one(path, 3, cells_deleted=1).save(None)
    assert refused.value.code == "cells_lost" and notebook_sources(path) == CELLS
    _lost_all_but_one(path, 3, cells_deleted=2).save(None)  # 3 - 2 deleted = 1 cell
    assert notebook_sources(path) == ["new"]


def test_a_copy_elsewhere_is_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, *CELLS)
    copy = tmp_path / "copy.ipynb"
    write_notebook(copy, *CELLS)
    _lost_all_but_one(path, 3).save(str(copy))
    assert notebook_sources(copy) == ["new"] and notebook_sources(path) == CELLS


async def test_cells_a_peer_deletes_are_deliberate(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, *CELLS)
    registry = RoomRegistry(tmp_path / "docs", lambda: 60.0)
    room = await registry.open(Handshake(channel="open_notebook", path=str(path)))
    peer = Peer(MemoryConnection())  # type: ignore[arg-type]
    room.join(peer)
    replica = NotebookDoc(Doc())
    replica.doc.apply_update(room.nb.doc.get_update())
    updates: list[bytes] = []
    replica.doc.observe(lambda event: updates.append(event.update))
    for cell_id in replica.cell_ids()[:2]:
        replica.delete_cell(cell_id)
    for update in updates:
        room.handle_frame(peer, FrameType.NOTEBOOK_SYNC, create_update_message(update))
    assert [c.source for c in room.nb.get_cells()] == ["c = 3"]
    assert room.file.cells_deleted == 2
    room.file.save(None)
    assert notebook_sources(path) == ["c = 3"]
    await registry.close_all()


async def test_deletions_are_remembered_by_a_daemon_killed_before_saving(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, *CELLS)
    docs = tmp_path / "docs"
    registry = RoomRegistry(docs, lambda: 60.0)
    room = await registry.open(Handshake(channel="open_notebook", path=str(path)))
    room.nb.delete_cell(room.nb.cell_ids()[0])
    room.nb.delete_cell(room.nb.cell_ids()[0])
    store = RoomStore(docs, room.notebook_id)
    killed = {p: p.read_bytes() for p in store.paths}  # as SIGKILL leaves them, now
    await registry.close_all()
    for p, data in killed.items():
        p.write_bytes(data)

    restarted = RoomRegistry(docs, lambda: 60.0)
    again = await restarted.open(Handshake(channel="open_notebook", path=str(path)))
    assert [c.source for c in again.nb.get_cells()] == ["c = 3"]
    assert again.file.cells_deleted == 2 and again.file.file_cells == 3
    again.file.save(None)
    assert notebook_sources(path) == ["c = 3"]
    assert again.file.cells_deleted == 0 and again.file.file_cells == 1
    await restarted.close_all()
