"""How REST handlers read bodies and answer: JSON in (bad JSON 400, oversize 413), msgspec
Structs out, and ``RuntimedError`` codes turned into HTTP statuses (the socket's error
codes, kept: ``{"error": {"code", "message"}}``)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from runtimed.daemon.http.http_errors import JSON, json_error
from runtimed.errors import RuntimedError

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: A request that cannot be served in the state things are in (the client may retry or
#: change that state), not a malformed one.
CONFLICTS = frozenset(
    {
        "busy",
        "cells_lost",
        "closed",
        "file_changed",
        "kernel_not_running",
        "no_kernel",
        "not_code",
        "not_waiting_for_input",
    }
)
#: Another client's to do (its execution's prompt).
FORBIDDEN = frozenset({"not_your_execution"})


def status_of(code: str) -> int:
    """The HTTP status of a ``RuntimedError`` code."""
    if code == "not_found":
        return 404
    if code in CONFLICTS:
        return 409
    if code in FORBIDDEN:
        return 403
    if code == "too_large":
        return 413
    if code == "io_error":
        return 500
    return 400


def reply(body: Any, status: int = 200) -> web.Response:
    """A msgspec Struct (or plain value) as a JSON response."""
    return web.Response(status=status, body=msgspec.json.encode(body), content_type=JSON)


def answers_errors(handler: Handler) -> Handler:
    """The handler's ``RuntimedError``s become JSON errors with their status."""

    @functools.wraps(handler)
    async def serve(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RuntimedError as exc:
            return json_error(status_of(exc.code), exc.code, exc.message)

    return serve


async def read_body(request: web.Request, body_type: type[T]) -> T:
    """The request's JSON body as ``body_type``; an empty body is ``{}`` (every field's
    default). Past the server's size limit: ``too_large`` (413)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise RuntimedError(
            f"the request body is larger than {request.client_max_size} bytes", "too_large"
        ) from exc
    try:
        return msgspec.json.decode(raw or b"{}", type=body_type)
    except msgspec.ValidationError as exc:
        raise RuntimedError(f"invalid request body: {exc}", "invalid_request") from exc
    except msgspec.DecodeError as exc:
        raise RuntimedError(f"the request body is not JSON: {exc}", "invalid_json") from exc


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low..high``."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise RuntimedError(f"{name} must be an integer from {low} to {high}", "invalid_request")
    return value


def query_seconds(request: web.Request, name: str, high: float) -> float | None:
    """A duration query parameter (``?wait=S``): None when absent, else ``0 < S <= high``."""
    text = request.query.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= high:  # also refuses nan
        raise RuntimedError(
            f"{name} must be a number of seconds, 0 < {name} <= {high:g}", "invalid_request"
        )
    return value
