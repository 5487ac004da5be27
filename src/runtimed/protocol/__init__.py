"""The runtimed wire protocol (v1): framing and message types, free of I/O."""

from runtimed.protocol.framing import (
    MAGIC,
    PREAMBLE,
    PROTOCOL_VERSION,
    Channel,
    FrameDecoder,
    check_preamble,
    encode_frame,
)

__all__ = [
    "MAGIC",
    "PREAMBLE",
    "PROTOCOL_VERSION",
    "Channel",
    "FrameDecoder",
    "check_preamble",
    "encode_frame",
]
