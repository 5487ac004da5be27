"""The REST API of the daemon: ``RestApi(...).routes()`` go to the HTTP server (every one
behind its token), ``/api/openapi.json`` describes them all.

Bodies are JSON: the socket protocol's msgspec types (``protocol/``) out, the few of
``rest_types`` in. Errors are ``{"error": {"code", "message"}}`` with the code the socket
would give and a status that fits it (400, 404, 409, 413).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from aiohttp import web

from runtimed.daemon.http.openapi import Endpoint, openapi_document
from runtimed.daemon.http.rest_errors import reply
from runtimed.daemon.http.rest_execute import NotebookAccess
from runtimed.daemon.http.rest_notebooks import NotebookRoutes
from runtimed.daemon.http.rest_runtimes import RuntimeRoutes
from runtimed.protocol.control import StatusReply
from runtimed.version import __version__

OPENAPI_PATH = "/api/openapi.json"


class RestApi:
    """``/api/...``: runtimes, executions, notebooks, status and the OpenAPI document.

    ``notebooks`` gives the daemon's ``NotebookService`` once it is built (a request that
    comes earlier waits for it); ``status`` is what `runtimed status` shows.
    """

    def __init__(self, notebooks: NotebookAccess, status: Callable[[], StatusReply]) -> None:
        self.status = status
        self.runtime_routes = RuntimeRoutes(notebooks)
        self.notebook_routes = NotebookRoutes(notebooks)
        self._document: bytes | None = None

    def endpoints(self) -> list[Endpoint]:
        """Every operation of the API (the OpenAPI document's own included)."""
        return [
            Endpoint(
                "GET",
                "/api/status",
                self.get_status,
                "pools, the kernel pool, open rooms",
                StatusReply,
            ),
            *self.runtime_routes.endpoints(),
            *self.notebook_routes.endpoints(),
            Endpoint("GET", OPENAPI_PATH, self.get_openapi, "this document", None),
        ]

    def routes(self) -> list[web.RouteDef]:
        """For ``HttpServer.add_routes``."""
        return [endpoint.route() for endpoint in self.endpoints()]

    def openapi(self) -> bytes:
        """The OpenAPI 3.1 document, as JSON (built once)."""
        if self._document is None:
            self._document = msgspec.json.encode(openapi_document(self.endpoints(), __version__))
        return self._document

    async def get_status(self, request: web.Request) -> web.Response:
        return reply(self.status())

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi(), content_type="application/json")
