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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import msgspec
import zmq
from jupyter_client.session import Session

from runtimed import timeline
from runtimed.daemon.kernels.execution import Message

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], object]
#: Decodes a large message's parts (signature, header, parent, metadata, content,
#: buffers...), in a worker thread; the daemon's stores big values as it decodes.
PartsDecoder = Callable[[list[memoryview]], Message]
_json = msgspec.json.Decoder()
_DELIMITER = b"<IDS|MSG>"

#: Messages at least this big are decoded in a worker thread, their socket paused
#: meanwhile (order is kept): a 200 MB print would hold the event loop for a second.
LARGE_MESSAGE_BYTES = 1 << 20

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
    return decode_parts(verified_parts(session, parts))


def verified_parts(session: Session, frames: list[Any]) -> list[memoryview]:
    """The message parts after the identities (signature first), signature checked.
    ``frames``: bytes or zmq Frames, read in place (a huge content part is not copied)."""
    views = [memoryview(f.buffer if isinstance(f, zmq.Frame) else f) for f in frames]
    for i, view in enumerate(views):
        if len(view) == len(_DELIMITER) and view == _DELIMITER:
            parts = views[i + 1 :]
            break
    else:
        raise ValueError("malformed kernel message: no delimiter")
    if len(parts) < 5:
        raise ValueError(f"malformed kernel message: {len(parts)} parts")
    if session.auth is not None:
        expected = session.sign(parts[1:5])
        if not hmac.compare_digest(bytes(parts[0]), expected):
            raise ValueError("kernel message with an invalid signature")
    return parts


def decode_parts(parts: list[memoryview], content: Any = None) -> Message:
    """The message dict of verified parts; ``content`` if the caller decoded it."""
    header = _json.decode(parts[1])
    return {
        "header": header,
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
        "parent_header": _json.decode(parts[2]),
        "metadata": _json.decode(parts[3]),
        "content": _json.decode(parts[4]) if content is None else content,
        "buffers": parts[5:],
    }


class KernelChannels:
    """Sockets to one kernel. ``on_iopub`` gets IOPub messages, ``on_reply`` shell and
    control replies and stdin requests, in arrival order, on the event loop."""

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
        # The kernel sends an input_request to the stdin peer whose identity is that of
        # the shell request's sender: both sockets take the session's id.
        identity = session.bsession
        self.shell = self._socket(context, zmq.DEALER, channel_url(info, "shell"), identity)
        self.control = self._socket(context, zmq.DEALER, channel_url(info, "control"))
        self.iopub = self._socket(context, zmq.SUB, channel_url(info, "iopub"))
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.stdin = self._socket(context, zmq.DEALER, channel_url(info, "stdin"), identity)
        self._handlers = {
            self.shell: on_reply,
            self.control: on_reply,
            self.iopub: on_iopub,
            self.stdin: on_reply,
        }
        self._decoding: set[zmq.Socket[Any]] = set()  # a large message is off the loop
        self.decode_large: PartsDecoder = decode_parts
        for sock in self._handlers:
            self._loop.add_reader(_fd(sock), self._drain, sock)
        self.closed = False

    @staticmethod
    def _socket(
        context: zmq.Context[Any], kind: int, url: str, identity: bytes | None = None
    ) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.connect(url)
        return sock

    def _drain(self, sock: zmq.Socket[Any]) -> None:
        """Read the messages waiting on ``sock``. The FD only signals new arrivals, so
        stopping early means coming back by ourselves: a kernel flooding output gets
        DRAIN_BATCH messages per loop turn and everyone else their turn in between."""
        handler = self._handlers[sock]
        for _ in range(DRAIN_BATCH):
            if self.closed or sock in self._decoding:
                return
            try:
                msg = self._receive(sock)
            except zmq.Again:
                return
            except (ValueError, msgspec.DecodeError) as exc:
                log.warning("dropping a kernel message: %s", exc)
                continue
            if msg is None:
                return  # a large one, decoded in a thread; draining resumes after it
            self._handle(handler, msg)
        self._loop.call_soon(self._drain, sock)

    @staticmethod
    def _handle(handler: MessageHandler, msg: Message) -> None:
        if timeline.ENABLED:
            timeline.stamp(f"kernel.{msg.get('msg_type')}.{_state(msg)}")
        try:
            handler(msg)
        except Exception:
            log.exception("failed to handle a kernel message")

    def _receive(self, sock: zmq.Socket[Any]) -> Message | None:
        """The next message, decoded; None when it is large and went to a thread. The
        frames are read in place and gone when it is handled: a huge output is not
        held twice."""
        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        if sum(len(f) for f in frames) < LARGE_MESSAGE_BYTES:
            return decode_parts(verified_parts(self.session, frames))
        self._decoding.add(sock)
        if timeline.ENABLED:
            timeline.stamp(f"kernel.large.{sum(len(f) for f in frames)}")
        work = self._loop.run_in_executor(None, self._decode_large, frames)
        work.add_done_callback(lambda done: self._large_decoded(sock, done))
        return None

    def _decode_large(self, frames: list[zmq.Frame]) -> Message:
        return self.decode_large(verified_parts(self.session, frames))

    def _large_decoded(self, sock: zmq.Socket[Any], done: asyncio.Future[Message]) -> None:
        timeline.stamp("kernel.large.decoded")
        self._decoding.discard(sock)
        if self.closed:
            return
        try:
            msg = done.result()
        except (ValueError, msgspec.DecodeError) as exc:
            log.warning("dropping a kernel message: %s", exc)
        except Exception:
            log.exception("failed to decode a large kernel message")
        else:
            self._handle(self._handlers[sock], msg)
        self._drain(sock)

    def send(
        self,
        sock: zmq.Socket[Any],
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None = None,
        buffers: Sequence[bytes] = (),
    ) -> str:
        """Send a request (or, with ``parent``, an answer to the kernel's request), with
        its binary ``buffers``; returns its msg_id."""
        msg = self.session.msg(msg_type, content, parent=parent)
        # Buffers follow the signed parts, unsigned (as Session.send puts them).
        parts: list[Any] = [*self.session.serialize(msg), *buffers]
        sock.send_multipart(parts, copy=True)
        # A send can consume the FD's edge: look for replies that are already there.
        self._loop.call_soon(self._drain, sock)
        return str(msg["header"]["msg_id"])

    def send_shell(
        self, msg_type: str, content: dict[str, Any], buffers: Sequence[bytes] = ()
    ) -> str:
        return self.send(self.shell, msg_type, content, buffers=buffers)

    def send_control(self, msg_type: str, content: dict[str, Any]) -> str:
        return self.send(self.control, msg_type, content)

    def send_stdin(self, msg_type: str, content: dict[str, Any], parent: Message) -> str:
        return self.send(self.stdin, msg_type, content, parent)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in self._handlers:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(_fd(sock))
            sock.close(linger=0)


def _state(msg: Message) -> str:
    content = msg.get("content")
    return str(content.get("execution_state", "")) if isinstance(content, dict) else ""


def _fd(sock: zmq.Socket[Any]) -> int:
    return int(cast(int, sock.getsockopt(zmq.FD)))
