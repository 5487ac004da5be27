"""The one error shape of the HTTP API: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import msgspec
from aiohttp import web

JSON = "application/json"


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str


class ErrorReplyBody(msgspec.Struct, frozen=True):
    """What every failed request answers (also the OpenAPI schema of errors)."""

    error: ErrorBody


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON error response: ``status`` with ``{"error": {"code", "message"}}``."""
    body = msgspec.json.encode(ErrorReplyBody(ErrorBody(code, message)))
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)
