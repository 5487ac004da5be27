"""The client protocol core, free of I/O: what to send on connect and how to read replies.

The blocking and asyncio connections below both drive it, so the two client flavours
cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.framing import PREAMBLE, Channel, encode_frame
from runtimed.protocol.messages import ErrorReply, PoolResponse, decode_response

CHANNEL_CAPS: dict[str, int] = {
    "pool": Channel.POOL,
    "settings_sync": Channel.SETTINGS,
    "notebook_sync": Channel.NOTEBOOK,
    "open_notebook": Channel.NOTEBOOK,
    "blob": Channel.BLOB,
}


def opening_bytes(channel: str, **params: Any) -> bytes:
    """Preamble and handshake frame that open a connection on ``channel``."""
    handshake = {"channel": channel, **{k: v for k, v in params.items() if v is not None}}
    return PREAMBLE + encode_frame(json.dumps(handshake).encode(), Channel.POOL)


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
    return reply


def parse_pool_reply(frame: bytes | None) -> PoolResponse:
    """A pool-channel reply; an error reply becomes RuntimedError."""
    if frame is None:
        raise ProtocolError("the daemon closed the connection before replying")
    reply = decode_response(frame)
    if isinstance(reply, ErrorReply):
        raise RuntimedError(reply.message, reply.code)
    return reply


def frame_cap(channel: str) -> int:
    return CHANNEL_CAPS.get(channel, Channel.POOL)
