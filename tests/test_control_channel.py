"""ControlChannel in process: a real EnvPool (with a builder double at the EnvBuilder
seam) and DiskKeeper behind DaemonControl, driven over a MemoryConnection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from env_doubles import BuilderDouble
from helpers import MemoryConnection
from runtimed.daemon.channels.control import ControlChannel, DaemonControl
from runtimed.daemon.disk_keeper import DiskKeeper
from runtimed.daemon.envs import EnvPool, PoolSettings
from runtimed.daemon.envs.inline_envs import InlineEnvs
from runtimed.errors import ProtocolError
from runtimed.protocol.control import (
    DaemonInfo,
    DiskReply,
    EnvRef,
    EnvReply,
    ErrorReply,
    Pong,
    PoolStatus,
    RoomInfo,
    StatusReply,
    Take,
    decode_response,
)
from runtimed.protocol.handshake import Handshake
from runtimed.version import __version__

ROOM = RoomInfo(
    notebook_id="nb", path=None, active_peers=2, has_kernel=True, kernel_status="running/idle"
)


class Daemon:
    """What the channel sees of a daemon, recorded for the test."""

    def __init__(self, pool: EnvPool, tmp: Path) -> None:
        self.pool = pool
        self.stops: list[str] = []
        self.control = DaemonControl(
            pools={"uv": pool},
            status=lambda: StatusReply(pools={"uv": pool.status()}, rooms=0, uptime_secs=1.0),
            info=lambda: DaemonInfo(
                pid=1,
                version=__version__,
                protocol_version=1,
                socket_path="s",
                cache_dir="c",
                started_at=0.0,
            ),
            list_rooms=lambda: [ROOM],
            request_stop=self.stops.append,
            disk=DiskKeeper(
                InlineEnvs(tmp / "inline", set),
                {"uv": pool},
                tmp / "docs",
                tmp / "blobs",
                open_rooms=set,
                collect_blobs=_no_blobs,
                setting=lambda key: {"gc.room_grace_days": 7}.get(key, 30),
            ),
        )


async def _no_blobs() -> list[str]:
    return []


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    pool = EnvPool(
        BuilderDouble(), tmp_path / "envs", PoolSettings(target=1, replenish_delay_secs=0)
    )
    await pool.start()
    yield Daemon(pool, tmp_path)
    await asyncio.wait_for(pool.close(), 10)


async def exchange(daemon: Daemon, *requests: dict[str, Any]) -> list[Any]:
    """Serve one connection that sends ``requests``, then hangs up; the decoded replies."""
    conn = MemoryConnection()
    for request in requests:
        conn.feed(msgspec.json.encode(request))
    conn.feed(None)
    await asyncio.wait_for(
        ControlChannel(daemon.control).serve(conn, Handshake(channel="pool")), 10
    )
    assert msgspec.json.decode(conn.sent[0])["ok"] is True  # the handshake's answer
    return [decode_response(frame) for frame in conn.sent[1:]]


async def test_ping_status_rooms_and_info(daemon: Daemon) -> None:
    pong, status, rooms, info = await exchange(
        daemon,
        {"type": "ping"},
        {"type": "status"},
        {"type": "list_rooms"},
        {"type": "get_daemon_info"},
    )
    assert (pong.protocol_version, pong.daemon_version) == (1, __version__)
    assert isinstance(status.pools["uv"], PoolStatus)
    assert rooms.rooms == [ROOM]
    assert info.version == __version__


async def test_take_hands_out_a_ready_env_and_return_to_a_full_pool_deletes_it(
    daemon: Daemon,
) -> None:
    (taken,) = await exchange(daemon, {"type": "take", "env_type": "uv", "timeout_secs": 5})
    assert isinstance(taken, EnvReply) and Path(taken.env.venv_path).is_dir()
    await wait_for(lambda: daemon.pool.status().available == 1)  # replenished
    ref = msgspec.to_builtins(EnvRef(venv_path=taken.env.venv_path))
    (returned,) = await exchange(daemon, {"type": "return", "env": ref})
    assert returned.message == "deleted"
    assert not Path(taken.env.venv_path).exists()


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_request_errors_keep_the_connection(daemon: Daemon) -> None:
    bad_type, bogus_env, pong = await exchange(
        daemon,
        {"type": "take", "env_type": "conda", "timeout_secs": 1},
        {"type": "return", "env": {"venv_path": "/etc"}},
        {"type": "ping"},
    )
    assert isinstance(bad_type, ErrorReply) and bad_type.code == "invalid_env"
    assert isinstance(bogus_env, ErrorReply) and bogus_env.code == "invalid_env"
    assert isinstance(pong, Pong)


async def test_a_malformed_request_ends_only_that_connection(daemon: Daemon) -> None:
    conn = MemoryConnection()
    conn.feed(b"{not json")
    with pytest.raises(ProtocolError):
        await ControlChannel(daemon.control).serve(conn, Handshake(channel="pool"))
    (pong,) = await exchange(daemon, {"type": "ping"})  # the next client is served
    assert isinstance(pong, Pong)


async def test_shutdown_answers_then_asks_the_daemon_to_stop(daemon: Daemon) -> None:
    conn = MemoryConnection()
    conn.feed(msgspec.json.encode({"type": "shutdown"}))
    await asyncio.wait_for(ControlChannel(daemon.control).serve(conn, Handshake(channel="pool")), 5)
    assert decode_response(conn.sent[1]).message == "shutting down"
    assert daemon.stops == ["shutdown requested by a client"]


async def test_a_take_whose_caller_left_goes_back_to_the_pool(daemon: Daemon) -> None:
    conn = MemoryConnection()
    await conn.close()  # the caller hung up while its take waited
    channel = ControlChannel(daemon.control)
    with pytest.raises(ConnectionResetError):
        await channel.handle(Take(env_type="uv", timeout_secs=5), conn)
    assert daemon.pool.status().available == 1


async def test_flush_rebuilds_and_the_disk_report_lists_the_envs(daemon: Daemon) -> None:
    builder = daemon.pool.builder
    assert isinstance(builder, BuilderDouble)
    await wait_for(lambda: daemon.pool.status().available == 1)
    (first,) = builder.built
    flushed, disk = await exchange(daemon, {"type": "flush_pool"}, {"type": "list_envs"})
    assert flushed.message == "flushed"
    assert not first.exists()
    await wait_for(lambda: daemon.pool.status().available == 1)
    assert len(builder.built) == 2 and builder.built[1].is_dir()
    assert isinstance(disk, DiskReply)
    assert all(env.name.startswith("runtimed-uv-") for env in disk.envs)
