"""RoomRegistry in-process: one room per notebook, eviction after keep_alive (kernels go
with their rooms), pinned rooms, list_rooms, stored rooms reused or reloaded when their
file changed on disk. Rooms are real; the rooms' kernels are a double. No daemon."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import MemoryConnection, write_notebook
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.peer import Peer
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.errors import RuntimedError
from runtimed.protocol.handshake import Handshake


class KernelsDouble:
    """The rooms' kernels as the registry sees them (``KernelsOfRooms``)."""

    def __init__(self) -> None:
        self.statuses: dict[str, str] = {}
        self.closed: list[NotebookRoom] = []

    def status(self, notebook_id: str) -> str | None:
        return self.statuses.get(notebook_id)

    async def close(self, room: NotebookRoom) -> None:
        self.closed.append(room)


def _registry(tmp_path: Path, keep_alive: float = 60.0) -> tuple[RoomRegistry, KernelsDouble]:
    kernels = KernelsDouble()
    registry = RoomRegistry(tmp_path / "docs", lambda: keep_alive, kernels)
    return registry, kernels


def _by_id(notebook_id: str) -> Handshake:
    return Handshake(channel="notebook_sync", notebook_id=notebook_id)


def _by_path(path: Path) -> Handshake:
    return Handshake(channel="open_notebook", path=str(path))


def _sources(room: NotebookRoom) -> list[str]:
    return [c.source for c in room.nb.get_cells()]


async def _until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_one_room_per_notebook_even_when_opened_at_once(tmp_path: Path) -> None:
    registry, _ = _registry(tmp_path)
    rooms = await asyncio.gather(*(registry.open(_by_id("nb")) for _ in range(5)))
    assert len({id(room) for room in rooms}) == 1
    assert await registry.open(_by_id("nb")) is rooms[0]
    assert list(registry.rooms) == ["nb"]
    await registry.close_all()


async def test_a_file_is_keyed_by_its_real_path(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "x = 1")
    link = tmp_path / "link.ipynb"
    link.symlink_to(path)
    registry, _ = _registry(tmp_path)
    room = await registry.open(_by_path(link))
    assert room.notebook_id == room.file.path == os.path.realpath(path)
    assert _sources(room) == ["x = 1"] and not room.file.dirty
    assert await registry.open(_by_path(path)) is room
    await registry.close_all()


@pytest.mark.parametrize(
    ("handshake", "code"),
    [
        (Handshake(channel="open_notebook"), "invalid_request"),
        (Handshake(channel="open_notebook", path="relative.ipynb"), "invalid_path"),
        (Handshake(channel="notebook_sync", notebook_id=""), "invalid_notebook_id"),
        (Handshake(channel="notebook_sync", notebook_id="a\x00b"), "invalid_notebook_id"),
    ],
)
async def test_bad_handshakes_open_nothing(tmp_path: Path, handshake: Handshake, code: str) -> None:
    registry, _ = _registry(tmp_path)
    with pytest.raises(RuntimedError) as refused:
        await registry.open(handshake)
    assert refused.value.code == code and registry.rooms == {}


async def test_a_room_without_peers_is_evicted_after_keep_alive(tmp_path: Path) -> None:
    registry, kernels = _registry(tmp_path, keep_alive=0.05)
    room = await registry.open(_by_id("nb"))
    room.nb.insert_cell(None, "kept on disk")
    peer = Peer(MemoryConnection())  # type: ignore[arg-type]
    room.join(peer)
    room.leave(peer)
    await _until(lambda: "nb" not in registry.rooms, "the eviction")
    assert kernels.closed == [room]  # its kernel went with it
    reopened = await registry.open(_by_id("nb"))
    assert reopened is not room and _sources(reopened) == ["kept on disk"]
    assert reopened.epoch == room.epoch  # the same history: clients keep their replicas
    await registry.close_all()


async def test_reopening_before_keep_alive_keeps_the_room(tmp_path: Path) -> None:
    registry, kernels = _registry(tmp_path, keep_alive=0.2)
    room = await registry.open(_by_id("nb"))
    peer = Peer(MemoryConnection())  # type: ignore[arg-type]
    room.join(peer)
    room.leave(peer)
    assert await registry.open(_by_id("nb")) is room  # cancels the eviction
    await registry.evict("nb")  # as the cancelled timer would have (no peers, not pinned)
    assert "nb" not in registry.rooms and kernels.closed == [room]
    await registry.close_all()


async def test_a_room_with_peers_or_pinned_is_not_evicted(tmp_path: Path) -> None:
    registry, kernels = _registry(tmp_path)
    room = await registry.open(_by_id("nb"))
    room.join(Peer(MemoryConnection()))  # type: ignore[arg-type]
    await registry.evict("nb")
    pinned = await registry.open(_by_id("runtime-1"))
    registry.pinned.add("runtime-1")
    await registry.evict("runtime-1")
    assert registry.rooms == {"nb": room, "runtime-1": pinned} and kernels.closed == []
    await registry.close_all()
    assert {r.notebook_id for r in kernels.closed} == {"nb", "runtime-1"}
    assert registry.rooms == {}


async def test_list_shows_peers_paths_and_kernel_status(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path)
    registry, kernels = _registry(tmp_path)
    room = await registry.open(_by_path(path))
    await registry.open(_by_id("untitled"))
    await registry.open(_by_id("stopped"))
    room.join(Peer(MemoryConnection()))  # type: ignore[arg-type]
    kernels.statuses = {room.notebook_id: "running/idle", "stopped": "shutdown"}
    infos = {info.notebook_id: info for info in registry.list()}
    assert infos[room.notebook_id].path == room.file.path
    assert infos[room.notebook_id].active_peers == 1
    assert infos[room.notebook_id].has_kernel
    assert infos[room.notebook_id].kernel_status == "running/idle"
    assert not infos["untitled"].has_kernel and infos["untitled"].kernel_status is None
    assert not infos["stopped"].has_kernel and infos["stopped"].kernel_status == "shutdown"
    await registry.close_all()


async def test_a_lingering_room_reloads_its_file_changed_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "old")
    registry, kernels = _registry(tmp_path)
    room = await registry.open(_by_path(path))
    write_notebook(path, "new")
    reloaded = await registry.open(_by_path(path))
    assert reloaded is not room and _sources(reloaded) == ["new"]
    assert reloaded.epoch != room.epoch  # another history: clients reset their replicas
    assert kernels.closed == [room]
    await registry.close_all()


async def test_a_lingering_room_with_unsaved_changes_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "old")
    registry, _ = _registry(tmp_path)
    room = await registry.open(_by_path(path))
    room.nb.insert_cell(None, "unsaved")
    write_notebook(path, "new")
    assert await registry.open(_by_path(path)) is room
    with pytest.raises(RuntimedError, match="changed on disk"):
        room.file.save(None)  # it would overwrite the newer file
    await registry.close_all()


async def test_a_stored_room_is_reused_while_its_file_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "x")
    registry, _ = _registry(tmp_path)
    room = await registry.open(_by_path(path))
    room.nb.insert_cell(None, "unsaved")
    room.file.save(None)
    room.nb.insert_cell(None, "edit after the save")
    await registry.close_all()  # as a daemon stopping

    restarted, _ = _registry(tmp_path)
    again = await restarted.open(_by_path(path))
    assert again.epoch == room.epoch
    assert _sources(again) == ["x", "unsaved", "edit after the save"]
    assert again.file.dirty  # what the file lacks is still known as unsaved
    await restarted.close_all()

    write_notebook(path, "changed while no daemon ran")
    third, _ = _registry(tmp_path)
    reloaded = await third.open(_by_path(path))
    assert reloaded.epoch != room.epoch
    assert _sources(reloaded) == ["changed while no daemon ran"]
    await third.close_all()


async def test_a_reopened_clean_room_stays_clean(tmp_path: Path) -> None:
    """The stored meta keeps the state the file matched: a room reopened from it knows it
    has nothing unsaved (and may be reloaded when its file changes)."""
    path = tmp_path / "a.ipynb"
    write_notebook(path, "x")
    registry, _ = _registry(tmp_path)
    await registry.open(_by_path(path))
    await registry.close_all()
    for _ in range(2):  # twice: the meta written on reopening keeps it too
        restarted, _ = _registry(tmp_path)
        again = await restarted.open(_by_path(path))
        assert not again.file.dirty
        await restarted.close_all()
