"""Applying a peer's Yjs sync frame to a document, with every way garbage can fail turned
into a ProtocolError (pycrdt surfaces Rust panics as BaseException subclasses)."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, handle_sync_message

from runtimed.documents.nesting_guard import NestingGuard, UpdateRejected
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


def apply_sync_frame(
    payload: bytes, doc: Doc[Any], what: str, guard: NestingGuard | None = None
) -> bytes | None:
    """Apply one sync message; returns the reply to send back (to a step1), if any.

    With a ``guard``, an update (step2 or update message) is checked before pycrdt
    decodes it: pycrdt recurses into nested values and a deep one crashes the process.
    """
    check_sync_frame(payload, what)
    if guard is not None and payload[1] != 0:
        try:
            guard.check(_sync_update(payload))
        except UpdateRejected as exc:
            raise ProtocolError(f"{what} update refused: {exc}", "update_refused") from None
    try:
        return handle_sync_message(payload[1:], doc)
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        raise
    except BaseException as exc:
        raise ProtocolError(f"invalid Yjs sync message: {exc}", "malformed_frame") from None


def _sync_update(payload: bytes) -> bytes:
    """The update a step2 or update message carries (a length-prefixed byte string)."""
    length, shift, pos = 0, 0, 2
    while True:
        if pos >= len(payload) or shift > 63:
            raise UpdateRejected("sync message ends early")
        byte = payload[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    if pos + length != len(payload):
        raise UpdateRejected("sync message length does not match its update")
    return payload[pos:]
