"""The daemon's own routes: ``GET /api/health`` (public, no details) and
``GET /api/status`` (the socket's StatusReply: pools, kernel pool, rooms, uptime, plus
the daemon's version)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from aiohttp import web

from runtimed.daemon.http.http_errors import JSON
from runtimed.protocol.control import DaemonInfo, StatusReply

_HEALTHY = b'{"ok":true}'


class StatusBody(msgspec.Struct, frozen=True):
    """``GET /api/status``: what `runtimed status` shows."""

    version: str
    protocol_version: int
    status: StatusReply


def health_routes() -> list[web.RouteDef]:
    """Public: whether the daemon answers, nothing more."""

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=_HEALTHY, content_type=JSON)

    return [web.get("/api/health", health)]


def status_routes(
    status: Callable[[], StatusReply], info: Callable[[], DaemonInfo]
) -> list[web.RouteDef]:
    """Behind the token: the daemon's status."""

    async def get_status(request: web.Request) -> web.Response:
        daemon = info()
        body = StatusBody(daemon.version, daemon.protocol_version, status())
        return web.Response(body=msgspec.json.encode(body), content_type=JSON)

    return [web.get("/api/status", get_status)]
