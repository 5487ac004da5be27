"""GatewayWire: a KernelWire over a gateway's channels websocket.

One websocket (``/api/kernels/{id}/channels?session_id=...``) carries the shell, control,
stdin and IOPub channels. The gateway picks the framing among those we offer: the
binary ``v1.kernel.websocket.jupyter.org`` one (``ws.protocol`` says so; see
``gateway_framing``) or the legacy JSON one. Sends are synchronous for the session (a
queue; one writer task keeps their order); a reader task hands every message to the
session's handlers in arrival order, decoding messages over a megabyte in a worker
thread (the reader waits for it, so order is kept).

A dropped websocket is reconnected with the same session id, so the gateway replays
what it buffered meanwhile; frames sent while it was down go out after. When the kernel
is gone (the gateway says 404, reports it ``dead`` or auto-``restarting`` after a
crash) or the gateway stays unreachable for ``reconnect_window`` seconds, the cells in
flight get a stderr line saying why and the backend is told (``on_lost``): the
session's death watcher then fails what is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from runtimed.daemon.gateway.gateway_framing import (
    LARGE_MESSAGE_BYTES,
    decode_legacy,
    decode_legacy_binary,
    decode_v1,
    encode_legacy,
    encode_v1,
    request_header,
)
from runtimed.daemon.gateway.gateway_rest import V1_PROTOCOL
from runtimed.daemon.gateway.gateway_settings import GatewayError
from runtimed.daemon.kernels.channels import MessageHandler, PartsDecoder, decode_parts
from runtimed.daemon.kernels.execution import Message
from runtimed.daemon.kernels.wire import KernelConnection

log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]
#: ``alive()``: True while the gateway knows the kernel, False on 404; raises
#: GatewayError when the gateway cannot be asked.
Alive = Callable[[], Awaitable[bool]]
RETRY_SECS = 0.25


class GatewayWire:
    """Messages to and from one gateway kernel (a ``KernelWire``).

    ``connection.info``: ``ws`` (the open websocket), ``connect`` (a new one, same session
    id), ``alive``, ``on_lost(reason)``, ``session_id``, ``username``,
    ``reconnect_window`` (seconds)."""

    def __init__(
        self, connection: KernelConnection, on_iopub: MessageHandler, on_reply: MessageHandler
    ) -> None:
        info = connection.info
        self._ws: aiohttp.ClientWebSocketResponse | None = info["ws"]
        self._connect: Connect = info["connect"]
        self._alive: Alive = info["alive"]
        self._on_lost: Callable[[str], None] = info["on_lost"]
        self._session_id = str(info["session_id"])
        self._username = str(info.get("username", "runtimed"))
        self._window = float(info.get("reconnect_window", 30.0))
        self._on_iopub = on_iopub
        self._on_reply = on_reply
        self.decode_large: PartsDecoder = decode_parts
        self.v1 = self._ws is not None and self._ws.protocol == V1_PROTOCOL
        self._out: deque[tuple[str, Message]] = deque()
        self._out_ready = asyncio.Event()
        self._up = asyncio.Event()
        self._up.set()
        #: execute_requests sent whose idle has not come: told why if the kernel is lost.
        self._running: dict[str, None] = {}
        self.closed = False
        self.reconnects = 0
        self._reader = asyncio.create_task(self._read_loop(), name="gateway-wire-read")
        self._writer = asyncio.create_task(self._write_loop(), name="gateway-wire-write")

    @property
    def framing(self) -> str:
        return "v1" if self.v1 else "json"

    # --- sending -------------------------------------------------------------------------

    def _send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None,
        buffers: Sequence[bytes] = (),
    ) -> str:
        header = request_header(msg_type, self._session_id, self._username)
        msg: Message = {
            "header": header,
            "parent_header": (parent or {}).get("header") or {},
            "metadata": {},
            "content": content,
            "buffers": list(buffers),
        }
        if not self.closed:
            self._out.append((channel, msg))
            self._out_ready.set()
        msg_id = str(header["msg_id"])
        if msg_type == "execute_request" and channel == "shell":
            self._running[msg_id] = None
        return msg_id

    def send_shell(
        self, msg_type: str, content: dict[str, Any], buffers: Sequence[bytes] = ()
    ) -> str:
        return self._send("shell", msg_type, content, None, buffers)

    def send_control(self, msg_type: str, content: dict[str, Any]) -> str:
        return self._send("control", msg_type, content, None)

    def send_stdin(self, msg_type: str, content: dict[str, Any], parent: Message) -> str:
        return self._send("stdin", msg_type, content, parent)

    async def _write_loop(self) -> None:
        while not self.closed:
            if not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            await self._up.wait()
            ws = self._ws
            if ws is None or ws.closed:
                self._up.clear()  # the reader reconnects and sets it again
                continue
            channel, msg = self._out[0]
            try:
                if self.v1:
                    await ws.send_bytes(encode_v1(channel, msg))
                else:
                    frame = encode_legacy(channel, msg)
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
            except (ConnectionError, aiohttp.ClientError):
                self._up.clear()
                continue  # sent again once reconnected
            self._out.popleft()

    # --- receiving -----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "the websocket closed"
        while not self.closed:
            ws = self._ws
            if ws is not None:
                try:
                    reason = await self._read(ws)
                except Exception as exc:  # a bug here must not leave cells hanging
                    log.exception("gateway wire failed")
                    reason = f"the gateway wire failed: {exc!r}"
            if self.closed or reason.startswith("the kernel"):
                break
            self._up.clear()
            lost = await self._reconnect(reason)
            if lost is not None:
                reason = lost
                break
        if not self.closed:
            self._lose(reason)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Deliver messages until the websocket closes; returns why it did (a reason
        starting with "the kernel" means the kernel itself is gone)."""
        while True:
            frame = await ws.receive()
            if frame.type is aiohttp.WSMsgType.BINARY:
                data: bytes = frame.data
                msg = await self._decode_binary(data)
            elif frame.type is aiohttp.WSMsgType.TEXT:
                text: str = frame.data
                msg = await self._decode_text(text)
            elif frame.type is aiohttp.WSMsgType.ERROR:
                return f"the websocket failed ({frame.data})"
            else:
                return f"the websocket closed (code {ws.close_code})"
            if msg is None or self.closed:
                continue
            channel, message = msg
            gone = self._deliver(channel, message)
            if gone is not None:
                return gone

    async def _decode_binary(self, data: bytes) -> tuple[str, Message] | None:
        try:
            if not self.v1:
                return decode_legacy_binary(data)
            channel, parts = decode_v1(data)
            if len(data) < LARGE_MESSAGE_BYTES:
                return channel, decode_parts(parts)
            loop = asyncio.get_running_loop()
            return channel, await loop.run_in_executor(None, self.decode_large, parts)
        except ValueError as exc:
            log.warning("dropping a gateway message: %s", exc)
            return None

    async def _decode_text(self, text: str) -> tuple[str, Message] | None:
        try:
            if len(text) < LARGE_MESSAGE_BYTES:
                return decode_legacy(text)
            return await asyncio.get_running_loop().run_in_executor(None, decode_legacy, text)
        except ValueError as exc:
            log.warning("dropping a gateway message: %s", exc)
            return None

    def _deliver(self, channel: str, msg: Message) -> str | None:
        handler = self._on_iopub if channel == "iopub" else self._on_reply
        if channel == "iopub" and msg.get("msg_type") == "status":
            state = (msg.get("content") or {}).get("execution_state")
            if state == "idle":
                parent = (msg.get("parent_header") or {}).get("msg_id")
                self._running.pop(str(parent), None)
            elif state in ("dead", "restarting"):
                return (
                    "the kernel died on the gateway"
                    if state == "dead"
                    else "the kernel died on the gateway (the gateway restarted it empty)"
                )
        try:
            handler(msg)
        except Exception:
            log.exception("failed to handle a kernel message")
        return None

    # --- reconnecting and losing the kernel ----------------------------------------------

    async def _reconnect(self, reason: str) -> str | None:
        """A new websocket with the same session id; None once connected, else why the
        kernel is lost."""
        deadline = time.monotonic() + self._window
        last = reason
        log.info("gateway websocket lost (%s); reconnecting", reason)
        while not self.closed and time.monotonic() < deadline:
            try:
                if not await self._alive():
                    return (
                        "the kernel is gone: the gateway no longer knows it "
                        "(was the gateway restarted?)"
                    )
                ws = await self._connect()
            except GatewayError as exc:
                last = exc.message
                await asyncio.sleep(RETRY_SECS)
                continue
            old, self._ws = self._ws, ws
            if old is not None:
                self._close_later(old)
            self.v1 = ws.protocol == V1_PROTOCOL
            self.reconnects += 1
            self._up.set()
            return None
        return f"lost the gateway for {self._window:g} s: {last}"

    def _lose(self, reason: str) -> None:
        """Tell the cells in flight and the backend; nothing is delivered afterwards."""
        log.warning("gateway kernel lost: %s", reason)
        for msg_id in list(self._running):
            note: Message = {
                "header": request_header("stream", self._session_id, self._username),
                "msg_type": "stream",
                "parent_header": {"msg_id": msg_id},
                "metadata": {},
                "content": {"name": "stderr", "text": f"\n[runtimed] {reason}\n"},
                "buffers": [],
            }
            with contextlib.suppress(Exception):
                self._on_iopub(note)
        self._running.clear()
        self._on_lost(reason)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._reader.cancel()
        self._writer.cancel()
        self._up.set()
        ws, self._ws = self._ws, None
        if ws is not None:
            self._close_later(ws)

    def _close_later(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Close a websocket without waiting (close() is sync for the session)."""
        if ws.closed:
            return
        task = asyncio.create_task(ws.close())
        _closing.add(task)
        task.add_done_callback(_closed)


#: Closing websockets (strong references until they are closed).
_closing: set[asyncio.Task[bool]] = set()


def _closed(task: asyncio.Task[bool]) -> None:
    _closing.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed close is not worth a warning


def gateway_wire(
    connection: KernelConnection, on_iopub: MessageHandler, on_reply: MessageHandler
) -> GatewayWire:
    """The ``WireFactory`` of gateway kernels."""
    return GatewayWire(connection, on_iopub, on_reply)
