"""The two framings of Jupyter's kernel channels websocket.

- ``v1.kernel.websocket.jupyter.org`` (binary): a little-endian u64 count of offsets,
  the u64 offsets, then the channel name and the message parts (header, parent header,
  metadata, content, buffers...) as the kernel sent them (JSON bytes, unsigned: the
  gateway signs and checks).
- legacy: one JSON text message per kernel message with a ``channel`` key; a message
  with buffers comes as binary: a big-endian u32 count, u32 offsets, the JSON, the
  buffers.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from runtimed.daemon.kernels.execution import Message

#: Messages at least this big are decoded in a worker thread (as on the ZMQ wire).
LARGE_MESSAGE_BYTES = 1 << 20
PROTOCOL_VERSION = "5.3"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_EMPTY_SIGNATURE = memoryview(b"")


def request_header(msg_type: str, session_id: str, username: str) -> dict[str, Any]:
    """A fresh message header (dates are ISO strings, as on the wire)."""
    return {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": username,
        "session": session_id,
        "date": datetime.now(UTC).isoformat(),
        "version": PROTOCOL_VERSION,
    }


def encode_v1(channel: str, msg: Message) -> bytes:
    """A message (header, parent_header, metadata, content) as one v1 binary frame."""
    parts = [
        channel.encode(),
        _encode(msg["header"]),
        _encode(msg.get("parent_header") or {}),
        _encode(msg.get("metadata") or {}),
        _encode(msg.get("content") or {}),
        *(bytes(b) for b in msg.get("buffers") or ()),
    ]
    count = len(parts) + 1
    offsets = [8 * (1 + count)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return b"".join([struct.pack(f"<{count + 1}Q", count, *offsets), *parts])


def decode_v1(data: bytes) -> tuple[str, list[memoryview]]:
    """The channel and the parts of a v1 frame, signature first (an empty one), as
    :func:`~runtimed.daemon.kernels.channels.decode_parts` reads them; the parts are
    views into ``data``. Raises ValueError when malformed."""
    view = memoryview(data)
    if len(view) < 8:
        raise ValueError("v1 frame too short")
    (count,) = struct.unpack_from("<Q", view)
    if not 2 <= count <= 4096 or len(view) < 8 * (count + 1):
        raise ValueError(f"v1 frame with {count} offsets")
    offsets = struct.unpack_from(f"<{count}Q", view, 8)
    if list(offsets) != sorted(offsets) or offsets[-1] > len(view):
        raise ValueError("v1 frame with bad offsets")
    channel = bytes(view[offsets[0] : offsets[1]]).decode()
    parts = [view[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    if len(parts) < 4:
        raise ValueError(f"v1 frame with {len(parts)} message parts")
    return channel, [_EMPTY_SIGNATURE, *parts]


def encode_legacy(channel: str, msg: Message) -> str | bytes:
    """A message as one legacy JSON text frame, or a binary one when it has buffers."""
    buffers = [bytes(b) for b in msg.get("buffers") or ()]
    text = _encode(
        {
            "header": msg["header"],
            "parent_header": msg.get("parent_header") or {},
            "metadata": msg.get("metadata") or {},
            "content": msg.get("content") or {},
            "buffers": [],
            "channel": channel,
        }
    )
    if not buffers:
        return text.decode()
    parts = [text, *buffers]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return b"".join([struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets), *parts])


def decode_legacy(
    text: str | bytes, buffers: list[memoryview] | None = None
) -> tuple[str, Message]:
    """The channel and message of a legacy JSON frame. Raises ValueError."""
    try:
        raw = _decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("header"), dict):
        raise ValueError("a JSON frame that is no kernel message")
    header = raw["header"]
    msg: Message = {
        "header": header,
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
        "parent_header": raw.get("parent_header") or {},
        "metadata": raw.get("metadata") or {},
        "content": raw.get("content") or {},
        "buffers": buffers or [],
    }
    return str(raw.get("channel") or "shell"), msg


def decode_legacy_binary(data: bytes) -> tuple[str, Message]:
    """A legacy binary frame (a message with buffers). Raises ValueError."""
    view = memoryview(data)
    if len(view) < 4:
        raise ValueError("binary frame too short")
    (count,) = struct.unpack_from("!I", view)
    if not 1 <= count <= 4096 or len(view) < 4 * (count + 1):
        raise ValueError(f"binary frame with {count} parts")
    offsets = [*struct.unpack_from(f"!{count}I", view, 4), len(view)]
    parts = [view[offsets[i] : offsets[i + 1]] for i in range(count)]
    return decode_legacy(bytes(parts[0]), parts[1:])
