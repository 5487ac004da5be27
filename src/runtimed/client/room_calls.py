"""Room requests as the clients build them, and their replies as they read them: the same
Structs the daemon decodes (``runtimed.protocol.room``)."""

from __future__ import annotations

from typing import Any

import msgspec

from runtimed.errors import RuntimedError
from runtimed.protocol.codec import encode
from runtimed.protocol.frames import FrameType, pack
from runtimed.protocol.room import (
    REQUEST_TYPES,
    RoomReply,
    RoomRequest,
    RoomResult,
    decode_room_reply,
)


def build_request(kind: str, request_id: int, **params: Any) -> RoomRequest:
    """A typed request; bad arguments raise here and never reach the daemon."""
    request_type = REQUEST_TYPES.get(kind)
    if request_type is None:
        known = ", ".join(sorted(REQUEST_TYPES))
        raise RuntimedError(f"unknown request type {kind!r}; known: {known}", "unknown_request")
    try:
        return msgspec.convert({**params, "id": request_id}, request_type)
    except msgspec.ValidationError as exc:
        raise RuntimedError(f"{kind}: {exc}", "invalid_request") from None


def request_frame(request: RoomRequest) -> bytes:
    return pack(FrameType.REQUEST, encode(request))


def read_reply(payload: bytes) -> RoomReply:
    return decode_room_reply(payload)


def reply_result(kind: str, reply: RoomReply) -> RoomResult:
    """The result of a reply, or the daemon's error as RuntimedError."""
    if not reply.ok or reply.result is None:
        raise RuntimedError(reply.error or f"{kind} failed", reply.code or "error")
    return reply.result


def as_dict(result: RoomResult) -> dict[str, Any]:
    """A result as the plain dict the public API returns (no ``type`` tag)."""
    fields = msgspec.to_builtins(result)
    fields.pop("type", None)
    return dict(fields)
