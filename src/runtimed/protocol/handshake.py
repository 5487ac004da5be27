"""The first frame of every connection, and the daemon's answer to it."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from runtimed.errors import ProtocolError
from runtimed.protocol.codec import encode
from runtimed.protocol.framing import PROTOCOL_VERSION
from runtimed.version import __version__

ChannelName = Literal["pool", "settings_sync", "notebook_sync", "open_notebook", "blob"]
CHANNELS: tuple[str, ...] = ("pool", "settings_sync", "notebook_sync", "open_notebook", "blob")


class Handshake(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """First frame of every connection: which channel, and its parameters."""

    channel: ChannelName
    notebook_id: str | None = None
    path: str | None = None
    protocol: int | None = None
    #: The room epoch the client's local history belongs to (None: no history).
    epoch: str | None = None
    #: A name for the peer, shown in presence and logs.
    client: str | None = None


_decoder = msgspec.json.Decoder(Handshake)


def decode_handshake(data: bytes) -> Handshake:
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        if "`$.channel`" in str(exc):
            raise ProtocolError(
                f"unknown channel ({exc}); known: {', '.join(CHANNELS)}", code="unknown_channel"
            ) from exc
        raise ProtocolError(f"invalid handshake: {exc}", code="invalid_request") from exc
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid JSON in handshake: {exc}", code="invalid_json") from exc


def encode_handshake(channel: str, **params: Any) -> bytes:
    """The client's handshake frame (parameters that are None are left out)."""
    return encode({"channel": channel, **{k: v for k, v in params.items() if v is not None}})


def handshake_ok(**extra: object) -> bytes:
    return encode(
        {"ok": True, "protocol_version": PROTOCOL_VERSION, "daemon_version": __version__, **extra}
    )


def error_frame(message: str, code: str) -> bytes:
    """The error a connection gets before it is closed (or on a channel without ids)."""
    return encode({"ok": False, "type": "error", "message": message, "code": code})
