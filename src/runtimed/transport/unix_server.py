"""The Unix socket server: preamble, handshake, then hand the connection to a channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.framing import HANDSHAKE_MAX_FRAME
from runtimed.protocol.handshake import Handshake, decode_handshake, error_frame
from runtimed.transport.stream import FramedStream, PartialFrameBudget

log = logging.getLogger(__name__)

#: Serves one connection of a channel after its handshake (it sends the handshake reply).
ChannelHandler = Callable[[FrameConnection, Handshake], Awaitable[None]]


class UnixSocketServer:
    """Accepts connections and routes each, after its handshake, to a channel handler.

    Whatever one connection sends, only that connection is affected: protocol errors
    get an error frame and a close, unexpected errors are logged, the server goes on.
    """

    def __init__(
        self,
        socket_path: Path,
        channels: dict[str, ChannelHandler],
        handshake_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.channels = channels
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections or connection_limit()
        self.budget = PartialFrameBudget()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        _refuse_live_socket(self.socket_path)
        self.socket_path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            self._server = await asyncio.start_unix_server(
                self._on_connect, path=str(self.socket_path), limit=2**20
            )
        finally:
            os.umask(old_umask)
        self.socket_path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
        self.socket_path.unlink(missing_ok=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        stream = FramedStream(reader, writer, HANDSHAKE_MAX_FRAME, self.budget)
        if len(self._connections) >= self.max_connections:
            log.warning("refusing a connection: %d are open", len(self._connections))
            message = f"the daemon has {len(self._connections)} connections open; retry later"
            await _try_send(stream, error_frame(message, "too_many_connections"))
            await stream.close()
            return
        self._connections.add(task)
        try:
            await self._serve(stream)
        except ProtocolError as exc:
            # A bare connect-and-close is how clients probe for a daemon: not news.
            level = logging.DEBUG if exc.code == "bad_preamble" else logging.INFO
            log.log(level, "closing connection: %s", exc.message)
            await _try_send(stream, error_frame(exc.message, exc.code))
        except RuntimedError as exc:
            await _try_send(stream, error_frame(exc.message, exc.code))
        except TimeoutError:
            await _try_send(stream, error_frame("handshake timed out", "handshake_timeout"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The server is closing: drop what the peer has not read, or the graceful
            # close below waits (uncancelled now) for a peer that may never read again.
            stream.abort()
        except Exception:
            log.exception("unexpected error on a connection; the daemon keeps serving")
            await _try_send(
                stream, error_frame("internal daemon error (see runtimed.log)", "internal")
            )
        finally:
            # The server may cancel us while we close (daemon shutdown); a cancelled
            # connection task would make asyncio log a spurious traceback.
            with contextlib.suppress(asyncio.CancelledError):
                await stream.close()
            self._connections.discard(task)

    async def _serve(self, stream: FramedStream) -> None:
        async with asyncio.timeout(self.handshake_timeout):
            await stream.read_preamble()
            frame = await stream.read_frame()
        if frame is None:
            return
        handshake = decode_handshake(frame)
        handler = self.channels.get(handshake.channel)
        if handler is None:
            raise ProtocolError(
                f"channel {handshake.channel!r} is not served by this daemon", "unknown_channel"
            )
        await handler(stream, handshake)


async def _try_send(stream: FramedStream, payload: bytes) -> None:
    with contextlib.suppress(Exception):
        stream.set_max_frame(max(stream.max_frame, len(payload)))
        await asyncio.wait_for(stream.write_frame(payload), timeout=1)


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one (the default 1,024 is ~1,000
    clients); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_limit() -> int:
    """Connections to accept: the descriptor limit, less room for kernels, envs and files
    (each kernel takes a handful of descriptors)."""
    configured = os.environ.get("RUNTIMED_MAX_CONNECTIONS", "")
    if configured.isdigit():
        return int(configured)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, min(soft // 2, soft - 512))


def _refuse_live_socket(path: Path) -> None:
    """A socket file that still accepts connections belongs to a live daemon elsewhere."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
    except OSError:
        return  # stale: nobody listens
    finally:
        probe.close()
    raise RuntimedError(
        f"another daemon is listening on {path}; stop it or choose another --socket",
        "socket_in_use",
    )
