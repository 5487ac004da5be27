"""The wire: how a KernelSession exchanges messages with its kernel.

A wire sends shell and control requests and hands every message that comes back to two
handlers, on the event loop, in arrival order: IOPub messages to one, shell and control
replies, and the kernel's stdin requests (``input_request``, sent while an execution
asked with ``allow_stdin`` waits in ``input()``), to the other. ``send_stdin`` answers
them (``input_reply``) on the stdin channel. It knows nothing of the kernel's process
(that is the backend's, see ``backend.py``): a session makes a fresh wire from the
backend's :class:`KernelConnection` after every start and restart, and closes it on
death, restart and shutdown.

Today's wire is :class:`~runtimed.daemon.kernels.channels.KernelChannels` (raw ZMQ
sockets, :func:`zmq_wire`); a websocket one (a Jupyter Kernel Gateway) is the next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jupyter_client.session import Session

from runtimed.daemon.kernels.channels import KernelChannels, MessageHandler, PartsDecoder
from runtimed.daemon.kernels.execution import Message

__all__ = [
    "KernelConnection",
    "KernelWire",
    "MessageHandler",
    "PartsDecoder",
    "WireFactory",
    "zmq_wire",
]


@dataclass(frozen=True)
class KernelConnection:
    """How to reach a launched kernel's channels.

    ``info``: connection-file fields for a local kernel (transport, ip, ports, key,
    signature_scheme), whatever its wire needs for another. ``session`` builds and signs
    messages with the kernel's key.
    """

    info: Mapping[str, Any]
    session: Session


class KernelWire(Protocol):
    """Messages to and from one kernel (see the module docstring)."""

    #: Decodes messages over a megabyte, in a worker thread (parts: signature, header,
    #: parent, metadata, content, buffers...). The session sets it before any arrives.
    decode_large: PartsDecoder

    def send_shell(
        self, msg_type: str, content: dict[str, Any], buffers: Sequence[bytes] = ()
    ) -> str:
        """Send a request on the shell channel (``buffers``: a ``comm_msg``'s binary
        values); returns its msg_id."""
        ...

    def send_control(self, msg_type: str, content: dict[str, Any]) -> str:
        """Send a request on the control channel; returns its msg_id."""
        ...

    def send_stdin(self, msg_type: str, content: dict[str, Any], parent: Message) -> str:
        """Answer a kernel's stdin request (``input_reply`` to the ``input_request``
        ``parent``) on the stdin channel; returns its msg_id."""
        ...

    def close(self) -> None:
        """Stop sending and delivering; idempotent. No handler is called afterwards."""
        ...


#: ``factory(connection, on_iopub, on_reply)``: a connected wire to a launched kernel.
WireFactory = Callable[[KernelConnection, MessageHandler, MessageHandler], KernelWire]


def zmq_wire(
    connection: KernelConnection, on_iopub: MessageHandler, on_reply: MessageHandler
) -> KernelChannels:
    """ZMQ sockets to a kernel's connection-file endpoints (the default wire)."""
    return KernelChannels(connection.info, connection.session, on_iopub, on_reply)
