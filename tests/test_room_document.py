"""NotebookRoom in-process: peers on in-memory connections, Yjs sync, logging before
broadcast, the read-only runtime document, duplicate ids, malformed frames. No daemon."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from helpers import MemoryConnection
from runtimed.daemon.rooms.notebook_file import NotebookFile
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.peer import Peer
from runtimed.daemon.rooms.room_loading import RoomContent, start_room
from runtimed.daemon.rooms.room_store import RoomStore
from runtimed.daemon.rooms.runtime_state import REBUILD_AFTER_DELETIONS
from runtimed.documents.notebook import NotebookDoc
from runtimed.documents.runtime import RuntimeDoc
from runtimed.errors import ProtocolError
from runtimed.protocol.frames import FrameType, unpack


def open_room(docs: Path, notebook_id: str = "nb") -> NotebookRoom:
    store = RoomStore(docs, notebook_id)
    stored = store.load()
    content = RoomContent("epoch-1", None, stored_updates=stored.updates if stored else [])
    return start_room(store, notebook_id, content, on_empty=lambda room: None)


class Client:
    """A peer's replica, synced through the room like a real client."""

    def __init__(self, room: NotebookRoom) -> None:
        self.room = room
        self.conn = MemoryConnection()
        self.peer = Peer(self.conn)  # type: ignore[arg-type]
        self.nb = NotebookDoc()
        self.runtime: Doc[Any] = Doc()
        self._outbox: list[bytes] = []
        self.nb.doc.observe(lambda e: self._outbox.append(create_update_message(e.update)))
        room.join(self.peer)
        self.pump()
        self.send(FrameType.NOTEBOOK_SYNC, create_sync_message(self.nb.doc))
        self.pump()

    def send(self, frame_type: FrameType, payload: bytes) -> None:
        self.room.handle_frame(self.peer, frame_type, payload)

    def push(self) -> None:
        """Ship local edits to the room."""
        outbox, self._outbox = self._outbox, []
        for message in outbox:
            self.send(FrameType.NOTEBOOK_SYNC, message)

    def pump(self) -> None:
        """Apply what the room sent us."""
        frames, self.conn.sent = self.conn.sent, []
        for frame in frames:
            frame_type, payload = unpack(frame)
            doc = {FrameType.NOTEBOOK_SYNC: self.nb.doc, FrameType.RUNTIME_SYNC: self.runtime}
            if frame_type in doc:
                reply = handle_sync_message(payload[1:], doc[frame_type])
                if reply is not None:
                    self.send(frame_type, reply)
        self._outbox.clear()  # remote changes are not ours to send back


async def test_an_edit_reaches_the_other_peers_and_the_log(tmp_path: Path) -> None:
    room = open_room(tmp_path)
    alice, bob = Client(room), Client(room)
    cell = alice.nb.insert_cell(None, "x = 1")
    alice.push()
    bob.pump()
    assert [c.source for c in bob.nb.get_cells()] == ["x = 1"]
    assert room.nb.get_cell(cell).source == "x = 1"
    alice.pump()
    assert [c.id for c in alice.nb.get_cells()] == [cell]  # no echo, no duplicate
    await room.close()
    reopened = open_room(tmp_path)  # the log holds it: acknowledged means durable
    assert reopened.nb.get_cell(cell).source == "x = 1"
    await reopened.close()


class OrderCheckingLog:
    """An UpdateLog that notes, for each update, what the peers had been sent by then."""

    def __init__(self, peers: list[MemoryConnection]) -> None:
        self.peers = peers
        self.sent_when_logged: list[list[int]] = []
        self.closed = False

    def append(self, update: bytes) -> None:
        self.sent_when_logged.append([len(conn.sent) for conn in self.peers])

    async def close(self) -> None:
        self.closed = True


async def test_every_update_is_logged_before_any_peer_gets_it() -> None:
    nb = NotebookDoc()
    update_log = OrderCheckingLog([])
    room = NotebookRoom("nb", "epoch-1", nb, NotebookFile(nb), update_log, lambda room: None)
    room.load([], None)
    room.start()
    alice, bob = Client(room), Client(room)
    update_log.peers = [alice.conn, bob.conn]
    alice.conn.sent.clear()
    bob.conn.sent.clear()
    alice.nb.insert_cell(None, "x = 1")
    alice.push()
    room.nb.insert_cell(None, "by the daemon")
    assert update_log.sent_when_logged[0] == [0, 0]  # logged: nobody told yet
    assert len(bob.conn.sent) >= 2 and len(alice.conn.sent) >= 1
    assert update_log.sent_when_logged[1] == [0, 1]  # alice is not sent her own edit
    bob.pump()
    assert [c.source for c in bob.nb.get_cells()] == ["x = 1", "by the daemon"]
    await room.close()
    assert update_log.closed


async def test_a_runtime_document_full_of_tombstones_is_replaced_for_every_peer(
    tmp_path: Path,
) -> None:
    room = open_room(tmp_path)
    client = Client(room)
    state = room.runtime_state
    state.set_kernel(lifecycle="running", activity="idle")
    for i in range(REBUILD_AFTER_DELETIONS):
        state.set_execution(f"exec-{i}", {"cell_id": "c", "status": "done"})
        state.flush()
        state.forget_execution(f"exec-{i}")
        state.flush()
    state.set_execution("kept", {"cell_id": "c", "status": "done"})
    old = room.runtime
    client.conn.sent.clear()
    state.flush()
    await asyncio.sleep(0)  # the rebuild runs in the next loop turn
    assert room.runtime is not old and state.deleted == 0
    frames = [unpack(frame) for frame in client.conn.sent]
    reset = next(i for i, (kind, payload) in enumerate(frames) if b"runtime_reset" in payload)
    replica: Doc[Any] = Doc()  # the peer drops its replica and takes the new one whole
    for kind, payload in frames[reset + 1 :]:
        if kind is FrameType.RUNTIME_SYNC:
            handle_sync_message(payload[1:], replica)
    assert RuntimeDoc(replica).kernel()["lifecycle"] == "running"
    assert list(RuntimeDoc(replica).executions_map.keys()) == ["kept"]
    client.conn.sent.clear()
    state.set_kernel(activity="busy")
    state.flush()  # the new document is observed: its updates reach the peers
    for kind, payload in (unpack(frame) for frame in client.conn.sent):
        if kind is FrameType.RUNTIME_SYNC:
            handle_sync_message(payload[1:], replica)
    assert RuntimeDoc(replica).kernel()["activity"] == "busy"
    await room.close()


async def test_clients_cannot_write_the_runtime_document(tmp_path: Path) -> None:
    room = open_room(tmp_path)
    mallory = Client(room)
    forged: Doc[Any] = Doc()
    updates: list[bytes] = []
    forged.observe(lambda e: updates.append(e.update))

    forged.get("kernel", type=Map)["lifecycle"] = "hacked"
    mallory.send(FrameType.RUNTIME_SYNC, create_update_message(updates[0]))
    room.runtime_state.flush()
    assert room.runtime_state.kernel_fields().get("lifecycle") != "hacked"
    assert room.runtime.get("kernel", type=Map).get("lifecycle") != "hacked"
    await room.close()


async def test_concurrent_inserts_of_one_id_leave_one_cell(tmp_path: Path) -> None:
    room = open_room(tmp_path)
    alice, bob = Client(room), Client(room)
    alice.nb.insert_cell(None, "a", cell_id="cell-same")
    bob.nb.insert_cell(None, "b", cell_id="cell-same")
    alice.push()
    bob.push()
    alice.pump()
    bob.pump()
    assert room.nb.cell_ids() == ["cell-same"]
    assert alice.nb.cell_ids() == bob.nb.cell_ids() == ["cell-same"]
    await room.close()


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x07\x00", b"\x00\x09garbage", b"\x00\x02\xff\xff\xff\xff\xff"],
)
async def test_malformed_sync_frames_raise_protocol_errors(tmp_path: Path, payload: bytes) -> None:
    room = open_room(tmp_path)
    client = Client(room)
    with pytest.raises(ProtocolError):
        client.send(FrameType.NOTEBOOK_SYNC, payload)
    assert room.nb.cell_ids() == []  # and the document is untouched
    await room.close()


async def test_save_writes_valid_nbformat(tmp_path: Path) -> None:
    room = open_room(tmp_path / "docs")
    room.nb.insert_cell(None, "print('hi')")
    room.nb.insert_cell(None, "# Title", "markdown")
    target = tmp_path / "out.ipynb"
    assert room.file.save(str(target)) == str(target)
    nb = nbformat.read(target, as_version=4)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["code", "markdown"]
    await room.close()


# --- the schema guard ------------------------------------------------------------------


def poisoned_update(poison: Any) -> bytes:
    """An update made by a peer that writes ``poison(cells)`` into its own replica."""
    doc: Doc[Any] = Doc()
    cells = doc.get("cells", type=Array)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    with doc.transaction():
        poison(cells)
    return updates[0]


def nested_map(depth: int) -> Map[Any]:
    node: Map[Any] = Map()
    for _ in range(depth):
        node = Map({"x": node})
    return node


POISONS = {
    "a number in cells": lambda cells: cells.append(42),
    "a cell without an id": lambda cells: cells.append(Map({"cell_type": "code"})),
    "a source that is not Text": lambda cells: cells.append(
        Map({"id": "cell-1", "cell_type": "code", "source": 7, "metadata": Map()})
    ),
    "an unknown cell type": lambda cells: cells.append(
        Map({"id": "c2", "cell_type": "evil", "source": Text("x"), "metadata": Map()})
    ),
    "metadata nested deep": lambda cells: cells.append(
        Map({"id": "c3", "cell_type": "code", "source": Text("x"), "metadata": nested_map(60)})
    ),
    "outputs that are not an array": lambda cells: cells.append(
        Map({"id": "c4", "cell_type": "code", "source": Text(""), "metadata": Map(), "outputs": 1})
    ),
}


@pytest.mark.parametrize("poison", POISONS.values(), ids=list(POISONS))
async def test_a_poisoned_update_is_repaired_for_everyone(tmp_path: Path, poison: Any) -> None:
    room = open_room(tmp_path / "docs")
    attacker, bystander = Client(room), Client(room)
    attacker.send(FrameType.NOTEBOOK_SYNC, create_update_message(poisoned_update(poison)))
    bystander.pump()
    for nb in (room.nb, bystander.nb):
        cells = nb.get_cells()  # never fails
        assert all(c.cell_type in ("code", "markdown", "raw") for c in cells)
    assert all(isinstance(c, Map) for c in room.nb.cells)
    room.file.save(str(tmp_path / "saved.ipynb"))
    nbformat.validate(nbformat.read(tmp_path / "saved.ipynb", as_version=4))
    await room.close()


async def test_a_poisoned_document_on_disk_is_repaired_on_load(tmp_path: Path) -> None:
    store = RoomStore(tmp_path, "nb")
    store.bind("epoch-1")  # a store as a room leaves it: snapshot, meta, then the log
    store.compact(NotebookDoc().doc.get_update())
    store.write_meta({"notebook_id": "nb", "epoch": "epoch-1", "path": None})
    store.open()
    store.append(poisoned_update(POISONS["a number in cells"]))
    store.append(poisoned_update(POISONS["a source that is not Text"]))
    store.close()
    room = open_room(tmp_path)
    assert [c.source for c in room.nb.get_cells()] == [""]
    room.file.save(str(tmp_path / "repaired.ipynb"))
    await room.close()


# Random shapes a careless or hostile peer can write: plain values, Maps with the cell
# keys holding anything, Arrays, Text, nested a few levels.
_KEYS = st.sampled_from(
    ["id", "cell_type", "source", "metadata", "outputs", "execution_count", "attachments", "x"]
)
_PLAIN = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=8),
    st.sampled_from(["code", "markdown", "raw", "cell-1", "cell-1"]),
)  # fmt: skip


def _shared(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(_KEYS, children, max_size=6).map(Map),
        st.lists(children, max_size=3).map(Array),
        st.text(max_size=8).map(Text),
        st.dictionaries(st.text(max_size=3), children, max_size=3),  # a plain JSON object
        st.lists(children, max_size=3),
    )


_VALUES = st.recursive(_PLAIN, _shared, max_leaves=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3), _VALUES), min_size=1, max_size=4))
def test_generated_updates_never_poison_the_notebook(inserts: list[tuple[int, Any]]) -> None:
    """Whatever shapes an update puts into `cells`, the room repairs it: every replica
    reads its cells and the saved file is valid nbformat."""

    def poison(cells: Array[Any]) -> None:
        for index, value in inserts:
            cells.insert(min(index, len(cells)), value)

    async def body(tmp: Path) -> None:
        room = open_room(tmp / "docs")
        room.nb.insert_cell(None, "x = 1")
        attacker, bystander = Client(room), Client(room)
        attacker.send(FrameType.NOTEBOOK_SYNC, create_update_message(poisoned_update(poison)))
        bystander.pump()
        for nb in (room.nb, bystander.nb):
            cells = nb.get_cells()
            assert all(c.cell_type in ("code", "markdown", "raw") for c in cells)
            assert len({c.id for c in cells}) == len(cells)
        room.file.save(str(tmp / "saved.ipynb"))
        nbformat.validate(nbformat.read(tmp / "saved.ipynb", as_version=4))
        await room.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(body(Path(tmp)))
