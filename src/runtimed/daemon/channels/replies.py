"""One way to answer a request on the notebook and settings channels: run its handler,
turn its result or its error into the reply frame (``{"id", "ok", "result"}`` or
``{"id", "ok": false, "error", "code"}``)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from runtimed.errors import RuntimedError
from runtimed.protocol.codec import encode
from runtimed.protocol.frames import FrameType, pack
from runtimed.protocol.room import RequestId

log = logging.getLogger(__name__)


def reply_frame(request_id: RequestId, result: Any) -> bytes:
    return pack(FrameType.RESPONSE, encode({"id": request_id, "ok": True, "result": result}))


def error_reply_frame(request_id: RequestId, message: str, code: str) -> bytes:
    reply = {"id": request_id, "ok": False, "error": message, "code": code}
    return pack(FrameType.RESPONSE, encode(reply))


async def answer(
    request_id: RequestId, what: str, handle: Callable[[], Awaitable[Any] | Any]
) -> bytes:
    """The reply frame for one request; never raises (but for cancellation)."""
    try:
        result = handle()
        if inspect.isawaitable(result):
            result = await result
    except RuntimedError as exc:
        return error_reply_frame(request_id, exc.message, exc.code)
    except Exception as exc:
        log.exception("request %s failed", what)
        return error_reply_frame(request_id, f"internal error: {exc!r}", "internal")
    return reply_frame(request_id, result)
