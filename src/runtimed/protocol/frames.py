"""Notebook and settings channel frames: a type byte, then the payload."""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

from runtimed.errors import ProtocolError


class FrameType(IntEnum):
    NOTEBOOK_SYNC = 0x00  # Yjs sync message for the notebook document
    REQUEST = 0x01  # JSON {"id", "type", ...}
    RESPONSE = 0x02  # JSON {"id", "ok", "result"} or {"id", "ok": false, "error", "code"}
    EVENT = 0x03  # JSON {"event", ...}
    AWARENESS = 0x04  # presence, relayed as-is to the other peers
    RUNTIME_SYNC = 0x05  # Yjs sync message for the runtime document (daemon-written)


def pack(frame_type: FrameType, payload: bytes) -> bytes:
    return bytes([frame_type]) + payload


def pack_json(frame_type: FrameType, value: dict[str, Any]) -> bytes:
    return pack(frame_type, json.dumps(value, separators=(",", ":")).encode())


def unpack(frame: bytes) -> tuple[FrameType, bytes]:
    if not frame:
        raise ProtocolError("empty frame on the notebook channel", "malformed_frame")
    try:
        return FrameType(frame[0]), frame[1:]
    except ValueError:
        raise ProtocolError(
            f"unknown frame type byte 0x{frame[0]:02x} (known: 0x00-0x05)", "malformed_frame"
        ) from None


def parse_json(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON in {what}: {exc}", "invalid_json") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object", "invalid_request")
    return value
