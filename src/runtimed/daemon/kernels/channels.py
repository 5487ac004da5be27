"""KernelChannels: the daemon's shell, control and IOPub sockets to one kernel.

jupyter_client's asyncio channels cost a poll registration, futures and a task switch per
message, and a socket wrapper per send; every execution pays that several times. Here
each socket is a plain zmq socket whose file descriptor sits in the event loop: when it
turns readable, every waiting message is read and handed to its handler at once,
synchronously. Messages are signed and checked with the kernel's key through
jupyter_client's ``Session``; header dates stay ISO strings (nothing here reads them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import msgspec
import zmq
from jupyter_client.session import Session

from runtimed.daemon.kernels.execution import Message

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], object]
_json = msgspec.json.Decoder()

# zmq retries a connect every 100 ms by default: a kernel binds its IPC sockets only once
# ipykernel is imported, so a late IOPub subscription (the slow joiner) would cost up to
# that much of every start.
RECONNECT_IVL_MS = 5
DRAIN_BATCH = 64


def channel_url(info: Mapping[str, Any], channel: str) -> str:
    """The zmq endpoint of ``channel`` (shell, control, iopub) in connection ``info``."""
    port = int(info[f"{channel}_port"])
    if info.get("transport", "tcp") == "tcp":
        return f"tcp://{info['ip']}:{port}"
    return f"{info['transport']}://{info['ip']}-{port}"


def decode_message(session: Session, parts: list[bytes]) -> Message:
    """A signed multipart kernel message -> message dict. Raises ValueError if forged."""
    _, found = session.feed_identities(parts, copy=True)
    msg_list = cast("list[bytes]", found)
    if len(msg_list) < 5:
        raise ValueError(f"malformed kernel message: {len(msg_list)} parts")
    if session.auth is not None:
        expected = session.sign(msg_list[1:5])
        if not hmac.compare_digest(msg_list[0], expected):
            raise ValueError("kernel message with an invalid signature")
    header = _json.decode(msg_list[1])
    return {
        "header": header,
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
        "parent_header": _json.decode(msg_list[2]),
        "metadata": _json.decode(msg_list[3]),
        "content": _json.decode(msg_list[4]),
        "buffers": [memoryview(b) for b in msg_list[5:]],
    }


class KernelChannels:
    """Sockets to one kernel. ``on_iopub`` gets IOPub messages, ``on_reply`` shell and
    control replies, in arrival order, on the event loop."""

    def __init__(
        self,
        info: Mapping[str, Any],
        session: Session,
        on_iopub: MessageHandler,
        on_reply: MessageHandler,
    ) -> None:
        self.session = session
        self._loop = asyncio.get_running_loop()
        context: zmq.Context[Any] = zmq.Context.instance()
        self.shell = self._socket(context, zmq.DEALER, channel_url(info, "shell"))
        self.control = self._socket(context, zmq.DEALER, channel_url(info, "control"))
        self.iopub = self._socket(context, zmq.SUB, channel_url(info, "iopub"))
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self._handlers = {self.shell: on_reply, self.control: on_reply, self.iopub: on_iopub}
        for sock in self._handlers:
            self._loop.add_reader(_fd(sock), self._drain, sock)
        self.closed = False

    @staticmethod
    def _socket(context: zmq.Context[Any], kind: int, url: str) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.connect(url)
        return sock

    def _drain(self, sock: zmq.Socket[Any]) -> None:
        """Read the messages waiting on ``sock``. The FD only signals new arrivals, so
        stopping early means coming back by ourselves: a kernel flooding output gets
        DRAIN_BATCH messages per loop turn and everyone else their turn in between."""
        handler = self._handlers[sock]
        for _ in range(DRAIN_BATCH):
            if self.closed:
                return
            try:
                msg = self._receive(sock)
            except zmq.Again:
                return
            except (ValueError, msgspec.DecodeError) as exc:
                log.warning("dropping a kernel message: %s", exc)
                continue
            try:
                handler(msg)
            except Exception:
                log.exception("failed to handle a kernel message")
        self._loop.call_soon(self._drain, sock)

    def _receive(self, sock: zmq.Socket[Any]) -> Message:
        """The next message, decoded. Its raw frames are gone when this returns: a huge
        output is not held twice while it is handled."""
        return decode_message(self.session, sock.recv_multipart(zmq.NOBLOCK))

    def send(self, sock: zmq.Socket[Any], msg_type: str, content: dict[str, Any]) -> str:
        """Send a request; returns its msg_id."""
        msg = self.session.msg(msg_type, content)
        sock.send_multipart(self.session.serialize(msg), copy=True)
        # A send can consume the FD's edge: look for replies that are already there.
        self._loop.call_soon(self._drain, sock)
        return str(msg["header"]["msg_id"])

    def send_shell(self, msg_type: str, content: dict[str, Any]) -> str:
        return self.send(self.shell, msg_type, content)

    def send_control(self, msg_type: str, content: dict[str, Any]) -> str:
        return self.send(self.control, msg_type, content)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in self._handlers:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(_fd(sock))
            sock.close(linger=0)


def _fd(sock: zmq.Socket[Any]) -> int:
    return int(cast(int, sock.getsockopt(zmq.FD)))
