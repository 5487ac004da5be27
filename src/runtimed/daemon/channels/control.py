"""The pool (control) channel: request/response JSON for pools and daemon control."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtimed.daemon.disk_keeper import DiskKeeper
from runtimed.daemon.envs import EnvPool
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.codec import encode
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.control import (
    CleanEnvs,
    DaemonInfo,
    EmptyReply,
    EnvReply,
    EnvType,
    ErrorReply,
    FlushPool,
    GetDaemonInfo,
    ListEnvs,
    ListRooms,
    OkReply,
    Ping,
    Pong,
    PoolRequest,
    PoolResponse,
    Return,
    RoomInfo,
    RoomsReply,
    Shutdown,
    Status,
    StatusReply,
    Take,
    decode_request,
)
from runtimed.protocol.framing import PROTOCOL_VERSION, Channel
from runtimed.protocol.handshake import Handshake, handshake_ok
from runtimed.protocol.runtimes import RuntimeRequest
from runtimed.version import __version__

if TYPE_CHECKING:
    from runtimed.daemon.channels.runtimes import RuntimeRequests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonControl:
    """What the control channel may see and do of the daemon."""

    pools: Mapping[str, EnvPool]
    status: Callable[[], StatusReply]
    info: Callable[[], DaemonInfo]
    list_rooms: Callable[[], list[RoomInfo]]
    request_stop: Callable[[str], None]
    disk: DiskKeeper
    #: Runtimes and execution history, once the notebook service is up (None: this
    #: daemon has neither).
    runtimes: Callable[[], Awaitable[RuntimeRequests]] | None = None

    def pool(self, env_type: str) -> EnvPool:
        pool = self.pools.get(env_type)
        if pool is None:
            raise RuntimedError(f"unknown env type {env_type!r}: use uv or conda", "invalid_env")
        return pool

    async def flush_pools(self) -> None:
        await asyncio.gather(*(pool.flush() for pool in self.pools.values()))


class ControlChannel:
    """Serves one pool-channel connection after its handshake."""

    def __init__(self, daemon: DaemonControl) -> None:
        self.daemon = daemon

    async def serve(self, stream: FrameConnection, handshake: Handshake) -> None:
        stream.set_max_frame(Channel.POOL)
        await stream.write_frame(handshake_ok())
        while True:
            frame = await stream.read_frame()
            if frame is None:
                return
            request = decode_request(frame)  # ProtocolError closes the connection
            try:
                reply = await self.handle(request, stream)
            except RuntimedError as exc:
                reply = ErrorReply(exc.message, exc.code)
            try:
                await stream.write_frame(encode(reply))
            except (ConnectionError, OSError):
                if isinstance(reply, EnvReply):  # nobody received it: back to the pool
                    await self._give_back_quietly(reply)
                raise
            if isinstance(request, Shutdown):
                self.daemon.request_stop("shutdown requested by a client")
                return

    async def handle(self, request: PoolRequest, stream: FrameConnection) -> PoolResponse:
        daemon = self.daemon
        if isinstance(request, RuntimeRequest):
            if daemon.runtimes is None:
                raise RuntimedError("this daemon keeps no runtimes", "unsupported")
            return await (await daemon.runtimes()).handle(request)
        match request:
            case Ping():
                return Pong(protocol_version=PROTOCOL_VERSION, daemon_version=__version__)
            case Status():
                return daemon.status()
            case Take(env_type=env_type, timeout_secs=timeout):
                env = await daemon.pool(env_type).take(timeout)
                if env is None:
                    return EmptyReply(
                        env_type, f"no {env_type} env became ready in time; see `runt pool status`"
                    )
                if stream.closing:  # the caller left while waiting
                    await daemon.pool(env_type).give_back(env.venv_path)
                    raise ConnectionResetError
                return EnvReply(env)
            case Return(env=ref):
                env_type = ref.env_type or _env_type_of(ref.venv_path)
                outcome = await daemon.pool(env_type).give_back(ref.venv_path)
                return OkReply(outcome)
            case FlushPool():
                await daemon.flush_pools()
                return OkReply("flushed")
            case Shutdown():
                return OkReply("shutting down")
            case ListRooms():
                return RoomsReply(daemon.list_rooms())
            case GetDaemonInfo():
                return daemon.info()
            case ListEnvs():
                return await daemon.disk.report()
            case CleanEnvs():
                return await daemon.disk.clean(request)
        raise ProtocolError(f"unhandled request {request!r}", "unknown_request")

    async def _give_back_quietly(self, reply: EnvReply) -> None:
        try:
            await self.daemon.pool(reply.env.env_type).give_back(reply.env.venv_path)
        except Exception:  # the env stays marked taken; startup GC collects it later
            log.exception("could not take back %s after a failed reply", reply.env.venv_path)


def _env_type_of(venv_path: str) -> EnvType:
    name = venv_path.rstrip("/").rsplit("/", 1)[-1]
    if name.startswith("runtimed-conda-"):
        return "conda"
    if name.startswith("runtimed-uv-"):
        return "uv"
    raise RuntimedError(f"{venv_path} is not a runtimed pool env", "invalid_env")
