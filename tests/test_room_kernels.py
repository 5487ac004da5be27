"""RoomKernels and RoomKernel in-process: one kernel per open room, made on first use,
closed with its room (its env given back); a closed room's late request makes none; the
envs kernels run in. Kernels are KernelSessions on a FakeBackend. No daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_provider_double import FakeKernelProvider
from runtimed.daemon.envs.resolver import ResolvedEnv
from runtimed.daemon.execution.room_kernel import RoomKernelDeps
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_loading import RoomContent, start_room
from runtimed.daemon.rooms.room_store import RoomStore, room_key
from runtimed.errors import RuntimedError
from runtimed.protocol.control import PooledEnv


def _room(tmp_path: Path, notebook_id: str = "nb") -> NotebookRoom:
    store = RoomStore(tmp_path / "docs", notebook_id)
    return start_room(store, notebook_id, RoomContent("epoch", None), lambda room: None)


def _kernels(
    tmp_path: Path, env: ResolvedEnv | None = None
) -> tuple[RoomKernels, FakeKernelProvider]:
    provider = FakeKernelProvider(tmp_path, env)
    deps = RoomKernelDeps(provider=provider, untitled_dir=tmp_path / "untitled")
    return RoomKernels(deps), provider


def _env(tmp_path: Path) -> ResolvedEnv:
    venv = tmp_path / "env-1"
    pooled = PooledEnv("uv", str(venv), str(venv / "bin" / "python"), ["ipykernel"])
    return ResolvedEnv(pooled, "uv:prewarmed", owned=True)


async def test_one_kernel_per_room_made_on_first_use(tmp_path: Path) -> None:
    room_kernels, provider = _kernels(tmp_path)
    room = _room(tmp_path)
    assert room_kernels.get("nb") is None and room_kernels.status("nb") is None
    room_kernel = room_kernels.of(room)
    assert room_kernels.of(room) is room_kernel and room_kernels.get("nb") is room_kernel
    assert room_kernels.status("nb") == "not_started"
    assert room_kernel.acquired is None and room_kernel.session is None
    assert provider.requests == []  # made, not launched
    await room_kernels.close(room)
    await room.close()


async def test_a_launched_kernel_is_described_and_closed_with_its_room(tmp_path: Path) -> None:
    room_kernels, provider = _kernels(tmp_path, _env(tmp_path))
    room = _room(tmp_path)
    room_kernel = room_kernels.of(room)
    details = await room_kernel.launch()
    assert details.lifecycle == "running" and details.language == "python"
    assert details.python_path == str(tmp_path / "env-1" / "bin" / "python")
    assert room_kernels.status("nb") == "running/idle"
    assert room_kernel.acquired is not None
    assert room_kernel.session is room_kernel.acquired.session
    assert room_kernels.env_paths() == {str(tmp_path / "env-1")}
    # An untitled notebook's kernel works in a private dir of its own.
    assert provider.requests[0].cwd == tmp_path / "untitled" / room_key("nb")
    acquired = room_kernel.acquired
    await room_kernels.close(room)
    assert provider.released == [acquired]  # the kernel stopped, its env given back
    assert room_kernel.acquired is None and room_kernels.get("nb") is None
    assert room_kernels.env_paths() == set()
    assert room.runtime_state.kernel_fields()["lifecycle"] == "shutdown"
    await room.close()


async def test_a_closed_rooms_late_request_makes_no_kernel(tmp_path: Path) -> None:
    room_kernels, _ = _kernels(tmp_path)
    old = _room(tmp_path)
    await room_kernels.close(old)  # a room with no kernel yet
    with pytest.raises(RuntimedError) as refused:
        room_kernels.of(old)  # a request of the closed room, still running
    assert refused.value.code == "closed"
    await old.close()
    new = _room(tmp_path)  # the same notebook, opened again
    room_kernel = room_kernels.of(new)
    assert room_kernel.room is new and room_kernels.get("nb") is room_kernel
    await room_kernels.close(old)  # a late close of the old room leaves the new one's
    assert room_kernels.get("nb") is room_kernel
    await room_kernels.close(new)
    await new.close()


async def test_every_room_kernel_is_listed(tmp_path: Path) -> None:
    room_kernels, _ = _kernels(tmp_path)
    rooms = [_room(tmp_path, f"nb-{i}") for i in range(3)]
    made = [room_kernels.of(room) for room in rooms]
    assert list(room_kernels) == made
    for room in rooms:
        await room_kernels.close(room)
        await room.close()
    assert list(room_kernels) == []
