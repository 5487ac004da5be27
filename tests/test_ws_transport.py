"""/ws in process: the shared ChannelDispatch behind an aiohttp websocket route, the
client ends (asyncio and blocking) and the token lookup. No daemon: a channel double."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from websockets.asyncio.client import connect

from helpers import MemoryConnection
from runtimed.client.channel import open_async, open_blocking
from runtimed.client.daemon_address import DaemonAddress, daemon_address
from runtimed.daemon.http.http_errors import json_error
from runtimed.daemon.http.ws_endpoint import ws_routes
from runtimed.daemon.http.yjs_endpoint import YjsConnection
from runtimed.errors import DaemonNotRunningError, RuntimedError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType, pack
from runtimed.protocol.handshake import Handshake, error_frame, handshake_ok
from runtimed.transport.dispatch import ChannelDispatch
from runtimed.transport.messages import MessageConnection
from runtimed.transport.ws_client import ws_url

CAP = 1024


async def echo(conn: FrameConnection, handshake: Handshake) -> None:
    """A channel double: caps frames at CAP, answers the handshake, echoes every frame."""
    conn.set_max_frame(CAP)
    await conn.write_frame(handshake_ok(channel=handshake.channel))
    while (frame := await conn.read_frame()) is not None:
        conn.send(frame)


Serve = Callable[[ChannelDispatch, list[web.middleware] | None], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(dispatch: ChannelDispatch, middlewares: list[web.middleware] | None) -> str:
        app = web.Application(middlewares=middlewares or [])
        app.add_routes(ws_routes(dispatch))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_frames_round_trip_in_order(serve: Serve) -> None:
    url = await serve(ChannelDispatch({"pool": echo}), None)
    conn, reply = await open_async(DaemonAddress(url=url), "pool", 10, then=[b"first"])
    assert reply["ok"] and reply["channel"] == "pool"
    for i in range(50):
        conn.send(f"frame {i}".encode())
    await conn.drain()
    got = [await conn.read_frame() for _ in range(51)]
    assert got == [b"first"] + [f"frame {i}".encode() for i in range(50)]
    await conn.close()


async def test_blocking_client_round_trip(serve: Serve) -> None:
    url = await serve(ChannelDispatch({"pool": echo}), None)

    def blocking() -> bytes | None:
        conn, _ = open_blocking(DaemonAddress(url=url), "pool", 10)
        try:
            conn.write_frame(b"ping")
            return conn.read_frame()
        finally:
            conn.close()

    assert await asyncio.to_thread(blocking) == b"ping"


async def test_a_frame_over_the_channel_cap_gets_an_error_frame_then_a_close(
    serve: Serve,
) -> None:
    url = await serve(ChannelDispatch({"pool": echo}), None)
    conn, _ = await open_async(DaemonAddress(url=url), "pool", 10)
    await conn.write_frame(b"x" * (CAP + 1))
    error = await asyncio.wait_for(conn.read_frame(), 10)
    assert error is not None and b"frame_too_large" in error
    assert await asyncio.wait_for(conn.read_frame(), 10) is None
    await conn.close()


async def test_an_unknown_channel_is_refused_with_the_daemons_message(serve: Serve) -> None:
    url = await serve(ChannelDispatch({"pool": echo}), None)
    with pytest.raises(RuntimedError) as caught:
        await open_async(DaemonAddress(url=url), "blob", 10)
    assert caught.value.code == "unknown_channel"


async def test_a_full_dispatch_answers_503_before_the_upgrade(serve: Serve) -> None:
    dispatch = ChannelDispatch({"pool": echo}, max_connections=1)
    url = await serve(dispatch, None)
    first, _ = await open_async(DaemonAddress(url=url), "pool", 10)
    with pytest.raises(RuntimedError) as caught:
        await open_async(DaemonAddress(url=url), "pool", 10)
    assert "(503)" in caught.value.message and "retry later" in caught.value.message
    await first.close()


async def test_a_refused_token_says_what_to_do(serve: Serve) -> None:
    @web.middleware
    async def refuse(request: web.Request, handler: Callable[..., object]) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer right":
            return json_error(401, "unauthorized", "a valid token is required")
        return await handler(request)  # type: ignore[no-any-return, misc]

    url = await serve(ChannelDispatch({"pool": echo}), [refuse])
    with pytest.raises(RuntimedError) as caught:
        await open_async(DaemonAddress(url=url, token="wrong"), "pool", 10)
    assert caught.value.code == "unauthorized"
    assert caught.value.message == (
        f"the daemon at {url} refused the token (401); "
        "pass token= (runt --token-file) or set RUNTIMED_TOKEN"
    )
    conn, _ = await open_async(DaemonAddress(url=url, token="right"), "pool", 10)
    await conn.close()


async def test_nobody_listening_is_not_running() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DaemonNotRunningError):
        await open_async(DaemonAddress(url=f"http://127.0.0.1:{port}"), "pool", 5)


def test_ws_url() -> None:
    assert ws_url("http://127.0.0.1:8765") == "ws://127.0.0.1:8765/ws"
    assert ws_url("https://host:1/") == "wss://host:1/ws"
    assert ws_url("https://host:1/runtimed") == "wss://host:1/runtimed/ws"
    with pytest.raises(RuntimedError):
        ws_url("127.0.0.1:8765")


def test_token_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "http-token").write_text("from-cache-dir\n")
    named = tmp_path / "named"
    named.write_text("from-token-file\n")
    monkeypatch.setenv("RUNTIMED_CACHE_DIR", str(cache))
    for name in ("RUNTIMED_TOKEN", "RUNTIMED_TOKEN_FILE", "RUNTIMED_URL"):
        monkeypatch.delenv(name, raising=False)
    local, remote = "http://127.0.0.1:9", "http://example.org:9"
    assert DaemonAddress(url=local).resolve_token() == "from-cache-dir"
    assert DaemonAddress(url=remote).resolve_token() is None  # never sent elsewhere
    assert DaemonAddress(url=remote, token_file=named).resolve_token() == "from-token-file"
    monkeypatch.setenv("RUNTIMED_TOKEN_FILE", str(named))
    assert DaemonAddress(url=local).resolve_token() == "from-token-file"
    monkeypatch.setenv("RUNTIMED_TOKEN", "from-env")
    assert DaemonAddress(url=local).resolve_token() == "from-env"
    assert DaemonAddress(url=local, token="given").resolve_token() == "given"


def test_address_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMED_URL", "http://127.0.0.1:9")
    assert daemon_address().url == "http://127.0.0.1:9"
    assert daemon_address("/tmp/x.sock").url is None
    assert daemon_address("/tmp/x.sock", url="http://h:1").url == "http://h:1"
    monkeypatch.delenv("RUNTIMED_URL")
    assert daemon_address().url is None


async def test_yjs_messages_are_the_rooms_frames_without_the_type_byte() -> None:

    inner = MemoryConnection()
    yjs = YjsConnection(inner)
    sync, awareness = bytes([0, 0, 1, 0]), bytes([1, 3, 7, 8, 9])
    for message in (sync, bytes([3]), awareness, None):  # 3: query awareness, skipped
        inner.feed(message)
    assert await yjs.read_frame() == pack(FrameType.NOTEBOOK_SYNC, sync)
    assert await yjs.read_frame() == pack(FrameType.AWARENESS, awareness[1:])
    assert await yjs.read_frame() is None

    await yjs.write_frame(handshake_ok(notebook_id="nb"))  # a Yjs client has no use for it
    yjs.send(pack(FrameType.NOTEBOOK_SYNC, sync))
    yjs.send(pack(FrameType.AWARENESS, awareness[1:]))
    for other in (FrameType.RUNTIME_SYNC, FrameType.EVENT, FrameType.RESPONSE):
        yjs.send(pack(other, b"{}"))
    assert inner.sent == [sync, awareness]
    assert yjs.refusal is None
    await yjs.write_frame(error_frame("no such room", "not_found"))
    assert yjs.refusal == "no such room"
    inner.feed(bytes([9]))
    with pytest.raises(RuntimedError):
        await yjs.read_frame()


async def test_bad_messages_get_an_error_frame_then_a_close(serve: Serve) -> None:
    url = await serve(ChannelDispatch({"pool": echo}), None)
    cases = [("text", "invalid_frame"), (b"not json", "invalid_json"), (b"{}", "invalid_request")]
    for message, code in cases:
        async with connect(ws_url(url), compression=None) as ws:
            await ws.send(message)
            error = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(error, bytes) and f'"code":"{code}"'.encode() in error
            await asyncio.wait_for(ws.wait_closed(), 10)
    conn, _ = await open_async(DaemonAddress(url=url), "pool", 10)  # the server goes on
    await conn.close()


class BrokenSocket:
    """A MessageSocket double whose peer went away: every send fails."""

    def __init__(self) -> None:
        self.sent = 0

    async def receive(self) -> bytes | None:
        return None

    async def send(self, data: bytes) -> None:
        self.sent += 1
        raise ConnectionResetError("peer gone")

    def buffered(self) -> int:
        return 0

    def closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_a_failed_send_closes_the_connection_for_its_writers() -> None:
    sock = BrokenSocket()
    conn = MessageConnection(sock, CAP)
    conn.send(b"one")
    conn.send(b"two")
    with pytest.raises(ConnectionResetError):
        await conn.drain()
    assert conn.closing and sock.sent == 1  # the queue behind the failure is dropped
    conn.send(b"three")  # a broadcast to a gone peer is dropped, never raises
    with pytest.raises(ConnectionResetError):
        await conn.write_frame(b"four")
    assert sock.sent == 1
