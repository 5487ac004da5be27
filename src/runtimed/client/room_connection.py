"""RoomConnection: a client's live connection to one notebook room.

It holds a pycrdt replica of the room's notebook and runtime documents. Local edits are
applied to the replica and sent as Yjs updates; remote edits arrive on a reader task.
After a lost connection the next call reconnects and the Yjs sync exchange resends
whatever the daemon does not have, so nothing is lost or duplicated (or the replica is
reset when the room has a new epoch).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio._backends._asyncio  # noqa: F401 - pycrdt's Doc() loads it on first use in a loop
import pycrdt
from pycrdt import Doc, create_sync_message, create_update_message, handle_sync_message

from runtimed import timeline
from runtimed.client.blobs import AsyncBlobClient
from runtimed.client.channel import open_async
from runtimed.client.core import offline
from runtimed.client.daemon_address import AddressLike, daemon_address
from runtimed.client.execution_waiters import ExecutionWaiters
from runtimed.client.room_calls import (
    as_dict,
    build_request,
    read_reply,
    reply_result,
    request_frame,
)
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType, pack, parse_json, unpack
from runtimed.protocol.room import RoomReply, RoomResult

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0
RECONNECT_DELAY_SECS = 0.25


EventListener = Callable[[dict[str, Any]], None]


class RoomConnection:
    """One client's connection to a notebook room: its replica of the notebook and
    runtime documents, the reader task, requests and events. ``AsyncSession`` builds the
    notebook API on it.
    """

    def __init__(
        self,
        notebook_id: str | None = None,
        socket_path: AddressLike = None,
        *,
        path: str | Path | None = None,
        client_name: str | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        """``url``/``token``: a daemon over HTTP (``/ws``) instead of the Unix socket."""
        self._path = os.path.abspath(path) if path is not None else None
        self._notebook_id = notebook_id or (self._path or f"untitled-{uuid.uuid4().hex[:12]}")
        self._address = daemon_address(socket_path, url, token)
        self._blobs: AsyncBlobClient | None = None
        self._client_name = client_name
        self._nb = NotebookDoc()
        self._runtime: Doc[Any] = Doc()
        self._stream: FrameConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._epoch: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[RoomReply]] = {}
        self._synced = asyncio.Event()
        self._applying_remote = False
        self._listeners: list[EventListener] = []
        self._closed = False
        self._ever_connected = False
        self._connect_lock = asyncio.Lock()
        self._reconnector: asyncio.Task[None] | None = None
        self._executions = ExecutionWaiters()
        self._listeners.append(self._executions.on_event)
        self._observe()

    # --- identity ------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, socket_path: AddressLike = None, **where: str | None) -> Self:
        """A session on the notebook file at ``path`` (created on save if missing);
        ``where``: ``url=`` and ``token=`` for a daemon over HTTP (the path is its)."""
        return cls(socket_path=socket_path, path=path, **where)

    @property
    def notebook_id(self) -> str:
        return self._notebook_id

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def is_connected(self) -> bool:
        return self._stream is not None and self._reader is not None and not self._reader.done()

    @property
    def document(self) -> NotebookDoc:
        """The local replica (read it; change it through the session's methods)."""
        return self._nb

    @property
    def runtime_doc(self) -> Doc[Any]:
        return self._runtime

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"<{type(self).__name__} notebook_id={self._notebook_id!r} {state}>"

    # --- connection ------------------------------------------------------------------

    async def connect(self) -> Self:
        """Join the room and wait until the local replica has the room's full state."""
        async with self._connect_lock:
            if self.is_connected:
                return self
            self._closed = False
            await self._open_stream()
        return self

    async def _open_stream(self) -> None:
        if self._path is not None:
            params: dict[str, Any] = {"path": self._path}
            channel = "open_notebook"
        else:
            params, channel = {"notebook_id": self._notebook_id}, "notebook_sync"
        # Without an epoch the reply cannot reset the replica: its sync step 1 can go
        # out with the handshake. Otherwise it waits for the reply (a reset changes it).
        early = self._epoch is None
        stream, reply = await open_async(
            self._address,
            channel,
            CONNECT_TIMEOUT,
            then=self._sync_step1() if early else (),
            epoch=self._epoch,
            client=self._client_name,
            **params,
        )
        if reply.get("reset") or (self._epoch is not None and reply.get("epoch") != self._epoch):
            self._reset_replica()  # history from another epoch is replaced, never merged
        self._epoch = reply.get("epoch")
        self._notebook_id = reply.get("notebook_id", self._notebook_id)
        self._path = reply.get("path") or self._path
        self._stream = stream
        self._synced.clear()
        self._reader = asyncio.create_task(self._read_loop(stream))
        if not early:
            for frame in self._sync_step1():
                stream.send(frame)
            await stream.drain()
        try:
            await asyncio.wait_for(self._wait_synced(), CONNECT_TIMEOUT)
        except TimeoutError:
            await self._drop_stream()
            raise RuntimedError(
                "the daemon did not send the notebook state in time", "timeout"
            ) from None
        self._ever_connected = True

    def _sync_step1(self) -> tuple[bytes, bytes]:
        return (
            pack(FrameType.NOTEBOOK_SYNC, create_sync_message(self._nb.doc)),
            pack(FrameType.RUNTIME_SYNC, create_sync_message(self._runtime)),
        )

    async def _wait_synced(self) -> None:
        reader = self._reader
        assert reader is not None
        synced = asyncio.ensure_future(self._synced.wait())
        await asyncio.wait({synced, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not synced.done():
            synced.cancel()
            raise RuntimedError("the daemon closed the notebook connection", "disconnected")

    async def close(self) -> None:
        """Leave the room. The daemon keeps the notebook (and its kernel) for other peers."""
        self._closed = True
        if self._reconnector is not None:
            self._reconnector.cancel()
        await self._drop_stream()
        if self._blobs is not None:
            await self._blobs.close()

    async def _drop_stream(self) -> None:
        stream, reader = self._stream, self._reader
        self._stream = self._reader = None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        if stream is not None:
            await stream.close()
        self._fail_pending(RuntimedError("the connection to the daemon was closed", "disconnected"))

    async def _ensure_connected(self) -> FrameConnection:
        if self._closed:
            raise RuntimedError(
                "this session is closed; call connect() to rejoin, or open a new Session",
                "closed",
            )
        if not self.is_connected:
            await self._drop_stream()
            await self.connect()
        assert self._stream is not None
        return self._stream

    # --- local-first edits -----------------------------------------------------------

    async def _before_edit(self) -> None:
        """A session that never saw the room connects first; one that lost its
        connection tries once and otherwise edits offline."""
        if not self._ever_connected or self._closed:
            await self._ensure_connected()
            return
        if not self.is_connected:
            try:
                await self._ensure_connected()
            except (RuntimedError, OSError) as exc:
                if not offline(exc):
                    raise

    async def _after_edit(self) -> None:
        """Confirm the edit when connected; otherwise keep reconnecting in the background
        (the Yjs exchange on reconnect sends the edit, once)."""
        if self.is_connected:
            try:
                await self._confirm()
                return
            except (RuntimedError, OSError) as exc:
                if not offline(exc):
                    raise
        self._keep_reconnecting()

    def _keep_reconnecting(self) -> None:
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self._closed and not self.is_connected:
            try:
                await self._ensure_connected()
            except (RuntimedError, OSError) as exc:
                if not offline(exc):
                    log.warning("this session cannot rejoin its notebook: %s", exc)
                    return
                await asyncio.sleep(RECONNECT_DELAY_SECS)

    async def _synced_with_daemon(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await self._ensure_connected()
                        await self._confirm()
                        return
                    except (RuntimedError, OSError) as exc:
                        if not offline(exc):
                            raise
                        await asyncio.sleep(RECONNECT_DELAY_SECS)
        except TimeoutError:
            raise RuntimedError(
                f"the daemon did not acknowledge this session's edits within {timeout} s "
                "(they are kept locally and sent when it answers)",
                "timeout",
            ) from None

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- replica -------------------------------------------------------------------

    def _observe(self) -> None:
        self._nb.doc.observe(self._on_local_update)

    def _reset_replica(self) -> None:
        self._nb = NotebookDoc()
        self._runtime = Doc()
        self._observe()

    def _on_local_update(self, event: pycrdt.TransactionEvent) -> None:
        if self._applying_remote or self._stream is None:
            return  # offline edits reach the daemon through the sync exchange on reconnect
        with contextlib.suppress(Exception):
            self._stream.send(pack(FrameType.NOTEBOOK_SYNC, create_update_message(event.update)))

    async def _read_loop(self, stream: FrameConnection) -> None:
        try:
            while (frame := await stream.read_frame()) is not None:
                self._handle_frame(stream, frame)
        except (ConnectionError, asyncio.IncompleteReadError, RuntimedError) as exc:
            log.debug("notebook connection lost: %s", exc)
        finally:
            self._fail_pending(RuntimedError("lost the connection to the daemon", "disconnected"))

    def _handle_frame(self, stream: FrameConnection, frame: bytes) -> None:
        frame_type, payload = unpack(frame)
        if timeline.ENABLED:
            timeline.stamp(f"recv.{frame_type.name}")
        if frame_type is FrameType.NOTEBOOK_SYNC:
            self._apply_remote(stream, frame_type, payload, self._nb.doc)
            if len(payload) > 1 and payload[1] == 1:  # SYNC_STEP2: we hold the full state
                self._synced.set()
        elif frame_type is FrameType.RUNTIME_SYNC:
            self._apply_remote(stream, frame_type, payload, self._runtime)
        elif frame_type is FrameType.RESPONSE:
            reply = read_reply(payload)
            future = self._pending.pop(reply.id, None) if isinstance(reply.id, int) else None
            if future is not None and not future.done():
                future.set_result(reply)
        elif frame_type is FrameType.EVENT:
            event = parse_json(payload, "event")
            if event.get("event") == "runtime_reset":
                self._runtime = Doc()  # the daemon's new runtime document follows, whole
            for listener in list(self._listeners):
                listener(event)

    def _apply_remote(
        self, stream: FrameConnection, frame_type: FrameType, payload: bytes, doc: Doc[Any]
    ) -> None:
        self._applying_remote = True
        try:
            reply = handle_sync_message(payload[1:], doc)
        finally:
            self._applying_remote = False
        if reply is not None:
            stream.send(pack(frame_type, reply))

    def _fail_pending(self, error: RuntimedError) -> None:
        pending, self._pending = self._pending, {}
        self._executions.fail_all(error)
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # a waiter may have given up: no "never retrieved" noise

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for each event the daemon sends to this room."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # --- requests --------------------------------------------------------------------

    async def request(
        self, kind: str, timeout: float | None = REQUEST_TIMEOUT, **params: Any
    ) -> Any:
        """Send a room request (``kind`` as in docs/protocol.md) and return its result
        as a dict; errors raise RuntimedError."""
        return as_dict(await self._call(kind, timeout, **params))

    async def _call(
        self, kind: str, timeout: float | None = REQUEST_TIMEOUT, **params: Any
    ) -> RoomResult:
        request = build_request(kind, next(self._ids), **params)
        stream = await self._ensure_connected()
        request_id = int(request.id or 0)
        future: asyncio.Future[RoomReply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if timeline.ENABLED:
            timeline.stamp(f"send.{kind}")
        await stream.write_frame(request_frame(request))
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise RuntimedError(f"{kind} got no answer within {timeout} s", "timeout") from None
        return reply_result(kind, reply)

    async def _confirm(self) -> None:
        await self._call("sync")
