"""The handshake -> channel dispatch every transport shares (the Unix socket, ``/ws``).

A transport hands each accepted connection, as a ``FrameConnection``, to
``ChannelDispatch.serve``; the dispatch counts it against one connection cap, reads the
handshake, runs the channel and handles whatever goes wrong on that connection alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from collections.abc import Awaitable, Callable

from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.handshake import Handshake, decode_handshake, error_frame
from runtimed.transport.stream import PartialFrameBudget

log = logging.getLogger(__name__)

#: How long a refused connection is read from before its refusal (``_take_opening``).
REFUSAL_READ_SECS = 1.0
#: Refused connections read from at once; past that a refusal closes at once (a flood of
#: connections must not hold the descriptors the cap keeps for kernels and files).
MAX_REFUSAL_READS = 32

#: Serves one connection of a channel after its handshake (it sends the handshake reply).
ChannelHandler = Callable[[FrameConnection, Handshake], Awaitable[None]]
#: What a transport reads before the handshake (the socket's preamble; nothing on /ws).
BeforeHandshake = Callable[[], Awaitable[None]]


class ChannelDispatch:
    """Routes connections, after their handshake, to channel handlers.

    Whatever one connection sends, only that connection is affected: protocol errors
    get an error frame and a close, unexpected errors are logged, the daemon goes on.
    The connection cap and the partial-frame budget hold over every transport.
    """

    def __init__(
        self,
        channels: dict[str, ChannelHandler],
        handshake_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        self.channels = channels
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections or connection_limit()
        self.budget = PartialFrameBudget()
        self._refusal_reads = 0
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def full(self) -> bool:
        return len(self._connections) >= self.max_connections

    def refusal(self) -> str:
        return f"the daemon has {len(self._connections)} connections open; retry later"

    async def serve(
        self,
        conn: FrameConnection,
        before: BeforeHandshake | None = None,
        handshake: Handshake | None = None,
    ) -> None:
        """Serve ``conn`` until it ends, then close it; never raises (but cancellation).
        ``handshake``: the transport already knows it (a URL that names the room)."""
        task = asyncio.current_task()
        assert task is not None
        if self.full:
            log.warning("refusing a connection: %d are open", len(self._connections))
            if handshake is None and self._refusal_reads < MAX_REFUSAL_READS:
                self._refusal_reads += 1
                try:
                    await self._take_opening(conn, before)
                finally:
                    self._refusal_reads -= 1
            await send_error(conn, error_frame(self.refusal(), "too_many_connections"))
            await conn.close()
            return
        self._connections.add(task)
        try:
            await self._serve(conn, before, handshake)
        except ProtocolError as exc:
            # A bare connect-and-close is how clients probe for a daemon: not news.
            level = logging.DEBUG if exc.code == "bad_preamble" else logging.INFO
            log.log(level, "closing connection: %s", exc.message)
            await send_error(conn, error_frame(exc.message, exc.code))
        except RuntimedError as exc:
            await send_error(conn, error_frame(exc.message, exc.code))
        except TimeoutError:
            await send_error(conn, error_frame("handshake timed out", "handshake_timeout"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The daemon is closing: drop what the peer has not read, or the graceful
            # close below waits (uncancelled now) for a peer that may never read again.
            conn.abort()
        except Exception:
            log.exception("unexpected error on a connection; the daemon keeps serving")
            await send_error(
                conn, error_frame("internal daemon error (see runtimed.log)", "internal")
            )
        finally:
            # The daemon may cancel us while we close (shutdown); a cancelled
            # connection task would make asyncio log a spurious traceback.
            with contextlib.suppress(asyncio.CancelledError):
                await conn.close()
            self._connections.discard(task)

    @staticmethod
    async def _take_opening(conn: FrameConnection, before: BeforeHandshake | None) -> None:
        """Read what a refused client sends first (preamble, handshake) before refusing
        it: closed before its handshake is written, the client would get EPIPE on
        writing it instead of the refusal. At most a second: a silent one is refused."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(REFUSAL_READ_SECS):
                if before is not None:
                    await before()
                await conn.read_frame()

    async def _serve(
        self, conn: FrameConnection, before: BeforeHandshake | None, handshake: Handshake | None
    ) -> None:
        if handshake is None:
            async with asyncio.timeout(self.handshake_timeout):
                if before is not None:
                    await before()
                frame = await conn.read_frame()
            if frame is None:
                return
            handshake = decode_handshake(frame)
        handler = self.channels.get(handshake.channel)
        if handler is None:
            raise ProtocolError(
                f"channel {handshake.channel!r} is not served by this daemon", "unknown_channel"
            )
        await handler(conn, handshake)

    async def close(self) -> None:
        """Cancel every connection (daemon shutdown) and wait for them to end."""
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


async def send_error(conn: FrameConnection, payload: bytes) -> None:
    """Best effort: the error frame a connection gets before it is closed."""
    with contextlib.suppress(Exception):
        conn.set_max_frame(max(conn.max_frame, len(payload)))
        await asyncio.wait_for(conn.write_frame(payload), timeout=1)


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
