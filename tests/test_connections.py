"""Connections: the descriptor limit is raised, connections past the cap are refused
clearly (others keep working), a frame that stalls times out, repeated log lines are
held back."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonProcess
from runtimed.daemon.logs import RepeatFilter
from runtimed.protocol.framing import PREAMBLE

HANDSHAKE = json.dumps({"channel": "pool"}).encode()


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def read_frame(s: socket.socket) -> bytes:
    header = s.recv(4)
    if len(header) < 4:
        return b""
    (length,) = struct.unpack(">I", header)
    data = b""
    while len(data) < length:
        chunk = s.recv(length - len(data))
        if not chunk:
            break
        data += chunk
    return data


def pool_connection(sock_path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(sock_path))
    s.sendall(PREAMBLE + frame(HANDSHAKE))
    return s


@pytest.fixture
def small_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    saved = dict(os.environ)
    os.environ.update({"RUNTIMED_MAX_CONNECTIONS": "20", "RUNTIMED_STALL_TIMEOUT": "1"})
    d = DaemonProcess(tmp_path / "cache", ["--uv-pool-size", "0"])
    try:
        d.start()
        yield d
    finally:
        os.environ.clear()
        os.environ.update(saved)
        d.stop()


@pytest.mark.daemon
def test_the_descriptor_soft_limit_is_raised(small_daemon: DaemonProcess) -> None:
    assert small_daemon.proc is not None
    limits = Path(f"/proc/{small_daemon.proc.pid}/limits").read_text().splitlines()
    _, _, _, soft, hard, _ = next(line for line in limits if "open files" in line).rsplit(None, 5)
    assert soft == hard


@pytest.mark.daemon
def test_connections_past_the_cap_are_refused_clearly(small_daemon: DaemonProcess) -> None:
    held = [pool_connection(small_daemon.socket_path) for _ in range(20)]
    for s in held:
        assert json.loads(read_frame(s))["ok"] is True
    extra = pool_connection(small_daemon.socket_path)
    refusal = json.loads(read_frame(extra))
    assert refusal["code"] == "too_many_connections" and "retry" in refusal["message"]
    for s in held:
        s.close()
    deadline = time.monotonic() + 10
    while True:  # the slots free up and the next client is served
        try:
            with small_daemon.client() as c:
                c.ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.daemon
def test_a_frame_that_stalls_midway_times_out(small_daemon: DaemonProcess) -> None:
    s = pool_connection(small_daemon.socket_path)
    assert json.loads(read_frame(s))["ok"] is True
    s.sendall(struct.pack(">I", 1000) + b'{"type": "pi')  # ... and nothing more
    started = time.monotonic()
    error = json.loads(read_frame(s))
    assert error["code"] == "stalled_frame" and time.monotonic() - started < 15
    with small_daemon.client() as c:
        c.ping()


def record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)


def test_repeated_lines_are_held_back() -> None:
    repeats = RepeatFilter(interval=60)
    assert repeats.filter(record("asyncio", "accept failed"))
    assert not any(repeats.filter(record("asyncio", "accept failed")) for _ in range(1000))
    own = record("runtimed", "uv build failed")
    assert repeats.filter(own) and repeats.filter(own)  # the daemon's own: one per event


def test_slow_readers_together_stay_within_the_outgoing_budget() -> None:
    """Each slow reader is under its own limit, yet all of them together are not allowed
    past the daemon-wide budget: the peer that would go over is dropped, the rest and
    the peers that keep up are served."""
    from helpers import MemoryConnection
    from runtimed.daemon.rooms.peer import OutgoingBudget, Peer
    from runtimed.protocol.frames import FrameType

    budget = OutgoingBudget(limit=10 * 2**20)
    slow = [Peer(MemoryConnection(), f"slow-{i}", budget) for i in range(4)]  # type: ignore[arg-type]
    reader = Peer(MemoryConnection(), "reader", budget)  # type: ignore[arg-type]
    for _ in range(3):
        for peer in [*slow, reader]:
            peer.send(FrameType.NOTEBOOK_SYNC, b"u" * 2**20)
        reader.stream.sent.clear()  # type: ignore[attr-defined]  # this one reads
    assert budget.total() <= 10 * 2**20 + 2**20
    assert sum(p.closed for p in slow) == 1, "one dropped: the one that would go over"
    assert not reader.closed


def test_presence_skips_a_reader_that_is_behind() -> None:
    from helpers import MemoryConnection
    from runtimed.daemon.rooms.peer import OutgoingBudget, Peer
    from runtimed.protocol.frames import FrameType

    peer = Peer(MemoryConnection(), "behind", OutgoingBudget(2**40))  # type: ignore[arg-type]
    peer.send(FrameType.NOTEBOOK_SYNC, b"d" * 2 * 2**20)
    peer.send_ephemeral(FrameType.AWARENESS, b"cursor")
    assert len(peer.stream.sent) == 1 and not peer.closed  # type: ignore[attr-defined]
    peer.stream.sent.clear()  # type: ignore[attr-defined]
    peer.send_ephemeral(FrameType.AWARENESS, b"cursor")
    assert peer.stream.sent == [b"\x04cursor"]  # type: ignore[attr-defined]
