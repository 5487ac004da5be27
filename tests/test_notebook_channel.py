"""NotebookChannel and RoomRequests in-process over a MemoryConnection: the handshake,
document sync, document requests (sync, save, get_info), kernel requests on a kernel
running on a FakeBackend, bad requests answered without closing the connection, and a
peer leaving. Real rooms and registry; no daemon, no socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import nbformat
import pytest
from pycrdt import Doc, create_sync_message, create_update_message, handle_sync_message

from helpers import MemoryConnection
from kernel_provider_double import FakeKernelProvider
from runtimed.daemon.channels.notebook import NotebookChannel
from runtimed.daemon.channels.room_requests import RoomRequests
from runtimed.daemon.execution.room_kernel import RoomKernelDeps
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.documents.notebook import NotebookDoc
from runtimed.protocol.codec import encode
from runtimed.protocol.frames import FrameType, pack, unpack
from runtimed.protocol.handshake import Handshake
from runtimed.protocol.room import RoomReply, decode_room_reply


@dataclass
class Daemonless:
    """The notebook channel's parts, wired as the daemon wires them."""

    registry: RoomRegistry
    room_kernels: RoomKernels
    provider: FakeKernelProvider
    channel: NotebookChannel


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Daemonless]:
    provider = FakeKernelProvider(tmp_path)
    deps = RoomKernelDeps(provider=provider, untitled_dir=tmp_path / "untitled")
    room_kernels = RoomKernels(deps)
    registry = RoomRegistry(tmp_path / "docs", lambda: 60.0, room_kernels)
    channel = NotebookChannel(registry, RoomRequests(room_kernels, blob_fetch=None))
    yield Daemonless(registry, room_kernels, provider, channel)
    await registry.close_all()


class Client:
    """One connection to the channel: frames in, frames out, a replica of the notebook."""

    def __init__(self, parts: Daemonless, handshake: Handshake) -> None:
        self.conn = MemoryConnection()
        self.nb = NotebookDoc()
        self.runtime: Doc[Any] = Doc()
        self.task = asyncio.create_task(parts.channel.serve(self.conn, handshake))  # type: ignore[arg-type]
        self._ids = 0
        self._read = 0

    def frames(self) -> list[tuple[FrameType, bytes]]:
        """Every frame received so far (the handshake reply first)."""
        return [unpack(frame) for frame in self.conn.sent[1:]]

    def handshake_reply(self) -> dict[str, Any]:
        return dict(msgspec.json.decode(self.conn.sent[0]))

    async def request(self, kind: str, **fields: Any) -> RoomReply:
        self._ids += 1
        request_id = self._ids
        self.conn.feed(pack(FrameType.REQUEST, encode({"id": request_id, "type": kind, **fields})))
        return await self.reply(request_id)

    async def event(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first event called ``name`` received so far, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            for frame_type, payload in self.frames():
                if frame_type is FrameType.EVENT:
                    event = dict(msgspec.json.decode(payload))
                    if event.get("event") == name:
                        return event
            assert time.monotonic() < deadline, f"no {name} event"
            await asyncio.sleep(0.01)

    async def reply(self, request_id: object, timeout: float = 5.0) -> RoomReply:
        deadline = time.monotonic() + timeout
        while True:
            for frame_type, payload in self.frames():
                if frame_type is FrameType.RESPONSE:
                    reply = decode_room_reply(payload)
                    if reply.id == request_id:
                        return reply
            assert time.monotonic() < deadline, f"no reply to request {request_id}"
            await asyncio.sleep(0.01)

    def apply_sync(self) -> None:
        """Apply every document frame received since the last call."""
        frames = self.frames()
        for frame_type, payload in frames[self._read :]:
            doc = {FrameType.NOTEBOOK_SYNC: self.nb.doc, FrameType.RUNTIME_SYNC: self.runtime}
            if frame_type in doc:
                reply = handle_sync_message(payload[1:], doc[frame_type])
                if reply is not None:  # the room asked for what this replica has
                    self.conn.feed(pack(frame_type, reply))
        self._read = len(frames)

    async def join(self) -> None:
        """Sync as clients do: ask for the room's document, answer its question."""
        self.conn.feed(pack(FrameType.NOTEBOOK_SYNC, create_sync_message(self.nb.doc)))
        await self.request("sync")
        self.apply_sync()

    async def leave(self) -> None:
        self.conn.feed(None)
        await self.task


async def _connected(parts: Daemonless, notebook_id: str = "nb", **fields: Any) -> Client:
    client = Client(parts, Handshake(channel="notebook_sync", notebook_id=notebook_id, **fields))
    deadline = time.monotonic() + 5
    while not client.conn.sent:
        assert time.monotonic() < deadline, "no handshake reply"
        await asyncio.sleep(0.01)
    await client.join()
    return client


async def test_handshake_then_the_document_and_the_edits_of_others(parts: Daemonless) -> None:
    alice = await _connected(parts)
    room = parts.registry.rooms["nb"]
    reply = alice.handshake_reply()
    assert reply["ok"] and reply["notebook_id"] == "nb" and reply["epoch"] == room.epoch
    assert reply["reset"] is False
    room.nb.insert_cell(None, "x = 1")
    await alice.request("sync")
    alice.apply_sync()
    assert [c.source for c in alice.nb.get_cells()] == ["x = 1"]

    bob = await _connected(parts, epoch="another-history")
    assert bob.handshake_reply()["reset"] is True  # its replica must be dropped
    assert [c.source for c in bob.nb.get_cells()] == ["x = 1"]
    updates: list[bytes] = []
    bob.nb.doc.observe(lambda event: updates.append(event.update))
    bob.nb.insert_cell(None, "from bob")
    bob.conn.feed(pack(FrameType.NOTEBOOK_SYNC, create_update_message(updates[-1])))
    synced = await bob.request("sync")
    assert synced.ok and msgspec.to_builtins(synced.result) == {"type": "synced", "cells": 2}
    await alice.request("sync")
    alice.apply_sync()
    assert [c.source for c in alice.nb.get_cells()] == ["x = 1", "from bob"]
    await alice.leave()
    await bob.leave()
    assert room.peers == {}


async def test_get_info_and_save(parts: Daemonless, tmp_path: Path) -> None:
    client = await _connected(parts)
    room = parts.registry.rooms["nb"]
    room.nb.insert_cell(None, "print('hi')")
    info = await client.request("get_info")
    assert info.ok and info.result is not None
    assert msgspec.to_builtins(info.result)["epoch"] == room.epoch
    target = tmp_path / "saved.ipynb"
    saved = await client.request("save", path=str(target))
    assert saved.ok and msgspec.to_builtins(saved.result)["path"] == str(target)
    assert [c.source for c in nbformat.read(target, as_version=4).cells] == ["print('hi')"]
    events = [p for t, p in client.frames() if t is FrameType.EVENT]
    assert any(b'"saved"' in event for event in events)  # every peer hears of it
    assert room.file.path == str(target)  # an untitled notebook's first save names it
    refused = await client.request("save", path="relative.ipynb")
    assert not refused.ok and refused.code == "invalid_path"
    await client.leave()


async def test_bad_requests_are_answered_and_the_connection_stays(parts: Daemonless) -> None:
    client = await _connected(parts)
    client.conn.feed(pack(FrameType.REQUEST, encode({"id": 7, "type": "no_such_request"})))
    assert (await client.reply(7)).ok is False
    missing = await client.request("execute_cell", cell_id="no-such-cell")
    assert not missing.ok and missing.code == "not_found"
    unknown = await client.request("get_execution", execution_id="exec-none")
    assert not unknown.ok and unknown.code == "not_found"
    no_kernel = await client.request("interrupt")
    assert not no_kernel.ok and no_kernel.code == "no_kernel"
    info = await client.request("kernel_info")
    assert info.ok and msgspec.to_builtins(info.result)["lifecycle"] == "not_started"
    assert (await client.request("sync")).ok  # still connected
    await client.leave()


async def test_kernel_requests_run_cells_on_the_rooms_kernel(parts: Daemonless) -> None:
    client = await _connected(parts)
    room = parts.registry.rooms["nb"]
    cell_id = room.nb.insert_cell(None, "x = 1")
    launched = await client.request("launch_kernel")
    assert launched.ok and msgspec.to_builtins(launched.result)["lifecycle"] == "running"
    queued = await client.request("execute_cell", cell_id=cell_id)
    execution_id = msgspec.to_builtins(queued.result)["execution_id"]
    record = await client.event("execution_done")  # the one path a result takes
    assert (record["execution_id"], record["status"], record["execution_count"]) == (
        execution_id,
        "done",
        1,
    )
    assert room.nb.get_cell(cell_id).outputs[0]["text"] == "ran x = 1\n"
    completions = await client.request("complete", code="pri")
    assert msgspec.to_builtins(completions.result)["matches"] == ["print"]
    assert parts.registry.list()[0].kernel_status == "running/idle"
    stopped = await client.request("shutdown_kernel")
    assert stopped.ok and len(parts.provider.released) == 1
    assert parts.room_kernels.status("nb") == "shutdown"
    await client.leave()


async def test_a_kernel_goes_with_its_evicted_room(parts: Daemonless) -> None:
    client = await _connected(parts)
    assert (await client.request("launch_kernel")).ok
    await client.leave()
    await parts.registry.evict("nb")  # as keep_alive would, once the last peer left
    assert parts.room_kernels.get("nb") is None and len(parts.provider.released) == 1
    assert parts.provider.backends[0].shutdowns  # the kernel 'process' was stopped
