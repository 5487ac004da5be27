"""The nesting guard: Yjs updates are read without pycrdt, deep ones are refused before
pycrdt sees them (it overflows its stack on them), real edits all pass. In-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, create_update_message

from runtimed.documents.nesting_guard import MAX_NESTING, NestingGuard, UpdateRejected
from runtimed.documents.yjs_structs import _Reader, scan_update
from runtimed.errors import ProtocolError
from runtimed.protocol.frames import FrameType
from test_room_document import Client, open_room

# --- hand-made updates (pycrdt cannot even build the deep ones) ----------------------


def uint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def string(s: str) -> bytes:
    data = s.encode()
    return uint(len(data)) + data


def update(structs: bytes, count: int, client: int = 7, clock: int = 0) -> bytes:
    return uint(1) + uint(count) + uint(client) + uint(clock) + structs + uint(0)


def in_root(content_ref: int, content: bytes, root: str = "cells") -> bytes:
    return bytes([content_ref]) + uint(1) + string(root) + content


def nested_arrays(depth: int) -> bytes:
    """Array in `cells`, then each Array inside the one before it."""
    structs = in_root(7, uint(0))
    for level in range(1, depth):
        structs += bytes([7]) + uint(0) + uint(7) + uint(level - 1) + uint(0)
    return update(structs, depth)


def any_update(value: bytes) -> bytes:
    return update(in_root(8, uint(1) + value), 1)


DEEP = 50_000
ATTACKS = {
    "shared arrays nested 50,000 deep": nested_arrays(DEEP),
    "a value array nested 50,000 deep": any_update(b"\x75\x01" * DEEP + b"\x7e"),
    "a value object nested 50,000 deep": any_update((b"\x76\x01" + string("k")) * DEEP + b"\x78"),
    "old-style JSON nested 50,000 deep": update(
        in_root(2, uint(1) + string("[" * DEEP + "]" * DEEP)), 1
    ),
    "an embed nested 50,000 deep": update(in_root(5, string("[" * DEEP + "]" * DEEP), "t"), 1),
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=list(ATTACKS))
def test_deep_updates_are_refused_before_pycrdt(attack: bytes) -> None:
    assert len(attack) < 400_000
    guard = NestingGuard(Doc().get_update)
    with pytest.raises(UpdateRejected, match="deeper than"):
        guard.check(attack)


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=list(ATTACKS))
async def test_a_deep_update_closes_only_the_sender(tmp_path: Path, attack: bytes) -> None:
    room = open_room(tmp_path / "docs")
    room.nb.insert_cell(None, "x = 1")
    attacker, bystander = Client(room), Client(room)
    with pytest.raises(ProtocolError) as refused:
        attacker.send(FrameType.NOTEBOOK_SYNC, create_update_message(attack))
    assert refused.value.code == "update_refused"
    assert "deeper than 100" in refused.value.message
    bystander.pump()
    assert [c.source for c in room.nb.get_cells()] == ["x = 1"]
    room.nb.insert_cell(None, "y = 2")  # the room goes on
    bystander.pump()
    assert [c.source for c in bystander.nb.get_cells()] == ["x = 1", "y = 2"]
    await room.close()


def test_nesting_one_level_per_update_stops_at_the_limit() -> None:
    """Each update puts one Array in the last one: every step refers to the document as
    it is, so the guard must know how deep existing content sits."""
    source: Doc[Any] = Doc()
    replica: Doc[Any] = Doc()
    guard = NestingGuard(replica.get_update)
    updates: list[bytes] = []
    source.observe(lambda e: updates.append(e.update))
    node: Array[Any] = source.get("cells", type=Array)
    for _ in range(MAX_NESTING):
        child: Array[Any] = Array()
        node.append(child)
        node = child
        guard.check(updates[-1])
        replica.apply_update(updates[-1])
    node.append(1)  # a plain value at the deepest level is fine
    guard.check(updates[-1])
    replica.apply_update(updates[-1])
    node.append(Array())
    with pytest.raises(UpdateRejected, match="deeper than 100 levels \\(101"):
        guard.check(updates[-1])


@pytest.mark.parametrize("levels", [3, 90])
def test_recorded_updates_count_before_the_next_check(levels: int) -> None:
    """The daemon's own updates are recorded unchecked and indexed later (at the latest
    by the next check, or every MAX_UNINDEXED): a peer's nesting built on them is
    measured from where they put it."""
    doc: Doc[Any] = Doc()
    guard = NestingGuard(doc.get_update)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    node: Array[Any] = doc.get("cells", type=Array)
    node.append(0)
    node.append(0)  # refers to the first: the guard indexes the document from here on
    guard.check(updates[-1])
    assert guard._index is not None
    for _ in range(levels):  # the daemon's writes, one level deeper each
        child: Array[Any] = Array()
        node.append(child)
        node = child
        guard.record(updates[-1])
    for _ in range(100):  # and plain writes at the bottom
        node.append(1)
        guard.record(updates[-1])
    peer: Doc[Any] = Doc()
    peer.apply_update(doc.get_update())
    bottom: Any = peer.get("cells", type=Array)[2]  # [0, 0, level 1]
    for _ in range(levels - 1):
        bottom = bottom[0]
    sent: list[bytes] = []
    peer.observe(lambda e: sent.append(e.update))
    value: Any = 1
    for _ in range(MAX_NESTING - levels):
        value = [value]
    bottom.append(value)  # exactly at the limit
    guard.check(sent[-1])
    bottom.append([value])  # one level past it
    with pytest.raises(UpdateRejected, match="deeper than 100 levels"):
        guard.check(sent[-1])


def test_shared_types_and_values_add_up() -> None:
    doc: Doc[Any] = Doc()
    cells: Array[Any] = doc.get("cells", type=Array)
    node: Any = cells
    for _ in range(60):
        child: Array[Any] = Array()
        node.append(child)
        node = child
    value: Any = 1
    for _ in range(45):
        value = [value]
    node.append(value)
    with pytest.raises(UpdateRejected, match="105 or more"):
        NestingGuard(Doc().get_update).check(doc.get_update())


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x01",
        b"\x01\x01\x07\x00\x07",  # a struct cut short
        update(in_root(4, string("abc")), 1) + b"\x00",  # bytes after the end
        update(in_root(31, b""), 1),  # unknown content
        update(in_root(7, uint(99)), 1),  # unknown shared type
        update(in_root(8, uint(1) + b"\x10"), 1),  # unknown value type
        update(bytes([7]) + uint(0) + uint(5) + uint(3) + uint(0), 1),  # parent missing
        update(  # two items, each the other's neighbour
            bytes([0x84]) + uint(7) + uint(1) + string("a")
            + bytes([0x84]) + uint(7) + uint(0) + string("b"),
            2,
        ),
    ],
)  # fmt: skip
def test_malformed_updates_are_refused_not_crashed_on(garbage: bytes) -> None:
    with pytest.raises(UpdateRejected):
        NestingGuard(Doc().get_update).check(garbage)


# --- what pycrdt writes, read back ------------------------------------------------------

_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.text(max_size=6), st.binary(max_size=4),
)  # fmt: skip
_VALUE = st.recursive(
    _LEAF,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3)
    ),
    max_leaves=10,
)
_KINDS = st.sampled_from(["text", "array", "map", "value", "delete"])
_EDIT = st.tuples(_KINDS, _VALUE, st.integers(0, 9))


def _apply_edit(doc: Doc[Any], edit: tuple[str, Any, int]) -> None:
    kind, value, where = edit
    cells: Array[Any] = doc.get("cells", type=Array)
    notes: Text = doc.get("notes", type=Text)
    maps = [c for c in cells if isinstance(c, Map)]
    if kind == "text":
        # at either end: pycrdt counts UTF-8 bytes and writes a broken update for an
        # index inside a character
        notes.insert(0 if where % 2 else len(notes), repr(value)[:5] + "🎉")
        for cell in maps[:1]:
            if isinstance(cell.get("source"), Text):
                cell["source"].insert(0, "é")
    elif kind == "array":
        cells.insert(min(where, len(cells)), Array([value, Map({"k": value})]))
    elif kind == "map":
        cell = Map({"source": Text("x"), "metadata": Map({"v": value})})
        cells.insert(min(where, len(cells)), cell)
    elif kind == "value" and maps:
        maps[where % len(maps)]["metadata"] = value
    elif kind == "delete" and len(cells):
        del cells[where % len(cells)]
        if len(notes):
            del notes[0]


def _state_vector(state: bytes) -> dict[int, int]:
    reader = _Reader(state)
    return {reader.uint(): reader.uint() for _ in range(reader.uint())}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_EDIT, min_size=1, max_size=4), min_size=1, max_size=6))
def test_real_edits_pass_and_read_back_as_pycrdt_wrote_them(batches: list[list[Any]]) -> None:
    """Every transaction of two editing peers passes the guard of a replica that takes
    it; the structs read back cover exactly the clocks pycrdt says the document has."""
    peers: list[Doc[Any]] = [Doc(), Doc()]
    replica: Doc[Any] = Doc()
    guard = NestingGuard(replica.get_update)
    for i, batch in enumerate(batches):
        peer = peers[i % 2]
        peer.apply_update(replica.get_update(peer.get_state()))  # catch up first
        updates: list[bytes] = []
        sub = peer.observe(lambda e, into=updates: into.append(e.update))
        for edit in batch:
            with peer.transaction():
                _apply_edit(peer, edit)
        peer.unobserve(sub)
        for u in updates:
            guard.check(u)
            replica.apply_update(u)
    whole = replica.get_update()
    NestingGuard(Doc().get_update).check(whole)
    runs = [run for run in scan_update(whole) if run.starts]
    ends = {run.client: run.starts[-1] + run.lengths[-1] for run in runs}
    assert ends == _state_vector(replica.get_state())


def _nested_update(shared: list[bool], values: list[bool]) -> bytes:
    """Maps/Arrays nested ``len(shared)`` deep in a root of its own (not `cells`, whose
    shape is repaired), holding a dict/list value nested ``len(values)`` deep (True: a
    map or dict)."""
    doc: Doc[Any] = Doc()
    node: Any = doc.get("scratch", type=Array)
    value: Any = "leaf"
    for is_dict in reversed(values):
        value = {"k": value} if is_dict else [value]
    with doc.transaction():
        for is_map in shared:
            child: Any = Map() if is_map else Array()
            node.__setitem__("k", child) if isinstance(node, Map) else node.append(child)
            node = child
        node.__setitem__("k", value) if isinstance(node, Map) else node.append(value)
    return doc.get_update()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.booleans(), max_size=150), st.lists(st.booleans(), max_size=150))
def test_generated_nesting_is_refused_exactly_past_the_limit(
    shared: list[bool], values: list[bool]
) -> None:
    """Any mix of shared types and values: refused iff it nests past the limit; what is
    taken reaches the other peers and the room keeps serving."""

    async def body(tmp: Path) -> None:
        room = open_room(tmp / "docs")
        attacker, bystander = Client(room), Client(room)
        message = create_update_message(_nested_update(shared, values))
        depth = len(shared) + len(values)
        if depth > MAX_NESTING:
            with pytest.raises(ProtocolError, match="deeper than"):
                attacker.send(FrameType.NOTEBOOK_SYNC, message)
        else:
            attacker.send(FrameType.NOTEBOOK_SYNC, message)
        bystander.pump()
        taken = [len(nb.doc.get("scratch", type=Array)) for nb in (room.nb, bystander.nb)]
        assert taken == [int(depth <= MAX_NESTING)] * 2
        room.nb.insert_cell(None, "after")
        bystander.pump()
        assert bystander.nb.get_cells()[-1].source == "after"
        await room.close()

    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(body(Path(tmp)))
