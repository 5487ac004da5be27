"""``GET /ws``: every socket channel (pool, notebook, settings, blob) over a websocket.

Auth (token, Origin, Host) is the HTTP server's middleware; this route only upgrades and
hands the connection to the Unix socket's dispatch, so both transports share the channel
handlers, the connection cap and the partial-frame budget.
"""

from __future__ import annotations

from aiohttp import web

from runtimed.daemon.http.http_errors import json_error
from runtimed.transport.dispatch import ChannelDispatch
from runtimed.transport.ws_server import serve_websocket


def ws_routes(dispatch: ChannelDispatch) -> list[web.RouteDef]:
    """The ``/ws`` route over ``dispatch`` (``UnixSocketServer.dispatch``)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        if dispatch.full:  # refused before the upgrade: a plain 503 any client can read
            return json_error(503, "too_many_connections", dispatch.refusal())
        return await serve_websocket(request, dispatch)

    return [web.get("/ws", serve)]
