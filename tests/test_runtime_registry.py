"""RuntimeRegistry in process: runtimes of notebook rooms and of `runt start`, found by
id prefix, interrupted, restarted and killed; RuntimeHistory records them and the room
kernels' executions in a real history.sqlite. Kernels run on kernel_doubles' FakeBackend
(through a KernelProvider double); no daemon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernel_provider_double import FakeKernelProvider
from runtimed.daemon.execution.room_kernel import RoomKernelDeps
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.history import HistoryLog, HistoryStore
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.daemon.runtimes import RuntimeRegistry
from runtimed.daemon.runtimes.runtime_history import RuntimeHistory
from runtimed.errors import RuntimedError
from runtimed.protocol.handshake import Handshake


@dataclass
class Runtimes:
    registry: RuntimeRegistry
    rooms: RoomRegistry
    room_kernels: RoomKernels
    history: HistoryLog
    provider: FakeKernelProvider


@pytest.fixture
async def runtimes(tmp_path: Path) -> AsyncIterator[Runtimes]:
    history = HistoryLog(HistoryStore(tmp_path / "history.sqlite"))
    history.start()
    provider = FakeKernelProvider(tmp_path)
    room_kernels = RoomKernels(
        RoomKernelDeps(
            provider=provider,
            untitled_dir=tmp_path / "untitled",
            execution_logs=history,
            runtime_observer=RuntimeHistory(history),
        )
    )
    rooms = RoomRegistry(tmp_path / "docs", lambda: 60.0, room_kernels)
    yield Runtimes(
        RuntimeRegistry(rooms, room_kernels, history), rooms, room_kernels, history, provider
    )
    await rooms.close_all()
    await asyncio.to_thread(history.close)


async def test_a_started_runtime_is_listed_found_by_prefix_and_killed(runtimes: Runtimes) -> None:
    info = await runtimes.registry.start("python3", "uv:prewarmed")
    assert info.status == "idle" and info.kernel_name == "python3"
    assert info.notebook_id == f"runtime-{info.runtime_id}"
    assert info.notebook_id in runtimes.rooms.pinned  # kept with nobody in its room
    assert [r.runtime_id for r in runtimes.registry.list()] == [info.runtime_id]
    assert runtimes.registry.find(info.runtime_id[:3]).runtime_id == info.runtime_id

    assert await runtimes.registry.kill(info.runtime_id[:4]) == info.runtime_id
    assert runtimes.registry.list() == []
    assert info.notebook_id not in runtimes.rooms.rooms  # its room went with it
    with pytest.raises(RuntimedError) as gone:
        runtimes.registry.find(info.runtime_id)
    assert gone.value.code == "not_found" and "runt ps" in gone.value.message


async def test_a_notebook_kernel_is_a_runtime_and_its_runs_are_history(
    runtimes: Runtimes,
) -> None:
    room = await runtimes.rooms.open(Handshake(channel="notebook_sync", notebook_id="nb"))
    room_kernel = runtimes.room_kernels.of(room)
    cell = room.nb.insert_cell(None, "x = 1")
    record = await room_kernel.queue.wait_done(room_kernel.enqueue(cell))
    assert record.status == "done"
    (info,) = runtimes.registry.list()
    assert info.notebook_id == "nb" and info.runtime_id == room_kernel.runtime_id

    restarted = await runtimes.registry.restart(info.runtime_id)
    assert restarted.status == "idle"
    interrupted = await runtimes.registry.interrupt(info.runtime_id)
    assert interrupted.runtime_id == info.runtime_id

    (entry,) = await asyncio.to_thread(runtimes.history.executions, "nb")
    assert (entry.cell_id, entry.runtime_id, entry.source) == (cell, info.runtime_id, "x = 1")
    row = await asyncio.to_thread(runtimes.history.store.runtime, info.runtime_id)
    assert row is not None and row["notebook_id"] == "nb"


async def test_bad_requests_fail_before_anything_starts(runtimes: Runtimes, tmp_path: Path) -> None:
    with pytest.raises(RuntimedError) as unknown:
        await runtimes.registry.start("no-such-kernel")
    assert "no-such-kernel" in unknown.value.message
    with pytest.raises(RuntimedError) as relative:
        await runtimes.registry.start("python3", cwd="relative/dir")
    assert relative.value.code == "invalid_cwd"
    assert runtimes.provider.requests == [] and runtimes.rooms.rooms == {}
    with pytest.raises(RuntimedError) as missing:
        await runtimes.registry.kill("nope")
    assert missing.value.code == "not_found"


async def test_an_ambiguous_prefix_names_the_problem(runtimes: Runtimes) -> None:
    started = [await runtimes.registry.start("python3") for _ in range(17)]
    ids = [info.runtime_id for info in started]
    common = next((a[0] for i, a in enumerate(ids) for b in ids[i + 1 :] if a[0] == b[0]), None)
    assert common is not None  # 17 ids, 16 possible first characters
    with pytest.raises(RuntimedError) as ambiguous:
        runtimes.registry.find(common)
    assert "several runtimes" in ambiguous.value.message
