"""The client protocol core, free of I/O: handshakes, and every request as a ``Call``.

A ``Call`` holds the frames to send, how long to wait, and a ``receive`` function that
is fed reply frames until it returns a result. The blocking and asyncio clients only
move bytes (``BlockingChannel`` / ``AsyncChannel`` in ``channel.py``), so the two flavours
of each client cannot drift apart: building requests, timeouts and decoding live here.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runtimed.client.control_client import (  # the version checks both clients share
    OutdatedDaemonWarning as OutdatedDaemonWarning,
)
from runtimed.client.control_client import version_note as version_note
from runtimed.client.control_client import warn_if_outdated as warn_if_outdated
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.codec import encode
from runtimed.protocol.framing import PROTOCOL_VERSION, Channel
from runtimed.protocol.handshake import encode_handshake
from runtimed.version import __version__

T = TypeVar("T")

CHANNEL_CAPS: dict[str, int] = {
    "pool": Channel.POOL,
    "settings_sync": Channel.SETTINGS,
    "notebook_sync": Channel.NOTEBOOK,
    "open_notebook": Channel.NOTEBOOK,
    "blob": Channel.BLOB,
}


class _More:
    """``receive`` wants another frame."""


MORE = _More()


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request/reply exchange on an open channel connection."""

    frames: tuple[bytes, ...]
    receive: Callable[[bytes], T | _More]
    #: Seconds to wait for the whole reply; None waits as long as it takes.
    timeout: float | None
    what: str = "request"

    def timed_out(self) -> RuntimedError:
        return RuntimedError(f"{self.what} got no answer within {self.timeout} s", "timeout")


def frame_cap(channel: str) -> int:
    return CHANNEL_CAPS.get(channel, Channel.POOL)


def handshake_frame(channel: str, **params: Any) -> bytes:
    """The first frame of a connection on ``channel`` (after the transport's preamble)."""
    return encode_handshake(channel, **params)


def parse_handshake_reply(frame: bytes | None) -> dict[str, Any]:
    """The daemon's handshake reply, or RuntimedError with the daemon's own message."""
    if frame is None:
        raise ProtocolError("the daemon closed the connection during the handshake")
    try:
        reply = json.loads(frame)
    except ValueError as exc:
        raise ProtocolError(f"unreadable handshake reply: {exc}") from exc
    if not isinstance(reply, dict) or not reply.get("ok"):
        message = reply.get("message") or reply.get("error") if isinstance(reply, dict) else None
        code = reply.get("code", "error") if isinstance(reply, dict) else "error"
        raise RuntimedError(message or f"handshake refused: {reply!r}", code)
    daemon_version = str(reply.get("daemon_version", ""))
    if reply.get("protocol_version", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise RuntimedError(
            f"the daemon (runtimed {daemon_version}) speaks protocol "
            f"{reply.get('protocol_version')}, this client (runtimed {__version__}) protocol "
            f"{PROTOCOL_VERSION}; run `runt daemon restart` to start the installed version",
            "version_mismatch",
        )
    warn_if_outdated(daemon_version)
    return reply


def closed_before_reply() -> ProtocolError:
    return ProtocolError("the daemon closed the connection before replying", "disconnected")


class RequestIds:
    """Request ids of one connection (replies echo them)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def next(self) -> int:
        return next(self._ids)


def single(payload: Any) -> tuple[bytes, ...]:
    return (encode(payload),)


OFFLINE_CODES = ("not_running", "disconnected", "timeout", "start_timeout", "truncated_frame")


def offline(exc: BaseException) -> bool:
    """Whether ``exc`` means "the daemon is not reachable right now" (not a refusal)."""
    if isinstance(exc, RuntimedError):
        return exc.code in OFFLINE_CODES or isinstance(exc, ProtocolError)
    return isinstance(exc, OSError)
