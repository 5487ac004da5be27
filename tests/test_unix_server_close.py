"""UnixSocketServer.close() in process: a shutdown is not held up by a peer that has
stopped reading what the daemon sent it."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.framing import PREAMBLE, encode_frame
from runtimed.protocol.handshake import Handshake, encode_handshake
from runtimed.transport.unix_server import UnixSocketServer


async def test_close_drops_what_a_stalled_peer_has_not_read(tmp_path: Path) -> None:
    flooded = asyncio.Event()

    async def flood(conn: FrameConnection, handshake: Handshake) -> None:
        conn.set_max_frame(2**26)
        while conn.buffered < 32 * 2**20:  # far more than the socket buffers hold
            conn.send(b"x" * 2**20)
            conn.flush()
        flooded.set()
        await asyncio.Event().wait()

    server = UnixSocketServer(tmp_path / "s.sock", {"blob": flood})
    await server.start()
    with socket.socket(socket.AF_UNIX) as peer:  # connects, then never reads
        peer.connect(str(tmp_path / "s.sock"))
        peer.sendall(PREAMBLE + encode_frame(encode_handshake("blob")))
        await asyncio.wait_for(flooded.wait(), 10)
        started = time.monotonic()
        await asyncio.wait_for(server.close(), 10)
        assert time.monotonic() - started < 5
    assert not (tmp_path / "s.sock").exists()
