"""Applying a peer's Yjs sync frame to a document, with every way garbage can fail turned
into a ProtocolError (pycrdt surfaces Rust panics as BaseException subclasses)."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, handle_sync_message

from runtimed.errors import ProtocolError

_YJS_SYNC = 0  # y-protocols message type of sync messages
_SYNC_STEPS = (0, 1, 2)  # step1, step2, update


def check_sync_frame(payload: bytes, what: str) -> None:
    """``payload`` must be a y-protocols sync message (type byte, then the step)."""
    if len(payload) < 2 or payload[0] != _YJS_SYNC:
        raise ProtocolError(f"{what} sync frame is not a Yjs sync message", "malformed_frame")
    if payload[1] not in _SYNC_STEPS:
        raise ProtocolError(
            "unknown Yjs sync message type (expected step1, step2 or update)", "malformed_frame"
        )


def apply_sync_frame(payload: bytes, doc: Doc[Any], what: str) -> bytes | None:
    """Apply one sync message; returns the reply to send back (to a step1), if any."""
    check_sync_frame(payload, what)
    try:
        return handle_sync_message(payload[1:], doc)
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        raise
    except BaseException as exc:
        raise ProtocolError(f"invalid Yjs sync message: {exc}", "malformed_frame") from None
