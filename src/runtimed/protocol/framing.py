"""Wire framing, v1: a 5-byte preamble, then u32 big-endian length-prefixed frames.

This module does no I/O. The daemon (asyncio streams) and the clients (blocking sockets or
asyncio) feed bytes in and take frames out, so there is one implementation of the format.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from enum import IntEnum

from runtimed.errors import ProtocolError

MAGIC = b"RUNT"
PROTOCOL_VERSION = 1
PREAMBLE = MAGIC + bytes([PROTOCOL_VERSION])
PREAMBLE_SIZE = len(PREAMBLE)
LENGTH_PREFIX = struct.Struct(">I")

HANDSHAKE_MAX_FRAME = 64 * 1024


class Channel(IntEnum):
    """Per-channel frame size caps, in bytes."""

    POOL = 1 * 1024 * 1024
    SETTINGS = 4 * 1024 * 1024
    NOTEBOOK = 64 * 1024 * 1024
    BLOB = 256 * 1024 * 1024


def check_preamble(data: bytes) -> None:
    """Raise ProtocolError unless ``data`` is the v1 preamble."""
    if len(data) != PREAMBLE_SIZE or data[:4] != MAGIC:
        raise ProtocolError(
            f"bad preamble {data[:8]!r}: expected b'RUNT' and a version byte "
            "(is this a runtimed client?)",
            code="bad_preamble",
        )
    if data[4] != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {data[4]}; this daemon speaks {PROTOCOL_VERSION}",
            code="version_mismatch",
        )


def encode_frame(payload: bytes, max_size: int = Channel.NOTEBOOK) -> bytes:
    """Length-prefix one payload."""
    if len(payload) > max_size:
        raise ProtocolError(
            f"frame of {len(payload)} bytes exceeds the {max_size}-byte limit", "frame_too_large"
        )
    return LENGTH_PREFIX.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes, iterate complete frames.

    An announced length over ``max_size`` raises at once, before the body is buffered, so
    a hostile length cannot make the reader allocate.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()

    def set_max_size(self, max_size: int) -> None:
        self.max_size = max_size

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buf.extend(data)
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            yield frame

    def _next_frame(self) -> bytes | None:
        if len(self._buf) < LENGTH_PREFIX.size:
            return None
        (length,) = LENGTH_PREFIX.unpack_from(self._buf)
        if length > self.max_size:
            raise ProtocolError(
                f"frame of {length} bytes exceeds the {self.max_size}-byte limit",
                code="frame_too_large",
            )
        end = LENGTH_PREFIX.size + length
        if len(self._buf) < end:
            return None
        frame = bytes(self._buf[LENGTH_PREFIX.size : end])
        del self._buf[:end]
        return frame

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)
