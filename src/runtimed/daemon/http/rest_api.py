"""The REST API of the daemon: ``RestApi(...).routes()`` go to the HTTP server (every one
behind its token), ``/api/openapi.json`` describes them all, and the daemon's own
``/api/health`` and ``/api/status`` (``daemon_routes``) too.

Bodies are JSON: the socket protocol's msgspec types (``protocol/``) out, the few of
``rest_types`` in. Errors are ``{"error": {"code", "message"}}`` with the code the socket
would give and a status that fits it (400, 404, 409, 413).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from runtimed.daemon.blobs.blob_store import BlobStore, is_valid_hash
from runtimed.daemon.blobs.http_server import blob_response
from runtimed.daemon.http.daemon_routes import StatusBody
from runtimed.daemon.http.openapi import Endpoint, openapi_document
from runtimed.daemon.http.rest_execute import NotebookAccess, RoomHolds
from runtimed.daemon.http.rest_notebooks import NotebookRoutes
from runtimed.daemon.http.rest_runtimes import RuntimeRoutes
from runtimed.daemon.http.web_actions import WebActions
from runtimed.daemon.http.web_input import InputConnections, WebInput
from runtimed.daemon.http.web_trust import WebTrust
from runtimed.daemon.http.web_widgets import WebWidgets
from runtimed.errors import RuntimedError
from runtimed.version import __version__

OPENAPI_PATH = "/api/openapi.json"


class RestApi:
    """``/api/...``: runtimes, executions, notebooks and the OpenAPI document.

    ``notebooks`` gives the daemon's ``NotebookService`` once it is built (a request that
    comes earlier waits for it).
    """

    def __init__(self, notebooks: NotebookAccess, blobs: BlobStore | None = None) -> None:
        #: Rooms without peers kept open while their REST executions run.
        self.holds = RoomHolds()
        #: The pages' input connections (``/ws/input``): who answers a cell's input().
        self.input_connections = InputConnections()
        self.runtime_routes = RuntimeRoutes(notebooks, self.holds)
        self.notebook_routes = NotebookRoutes(notebooks, self.holds, self.input_connections)
        #: The notebook page's kernel actions (interrupt, restart, complete, inspect).
        self.web_actions = WebActions(notebooks)
        #: The page's widget changes and messages (issue 26).
        self.web_widgets = WebWidgets(notebooks)
        #: The page's stdin: its input connection and its answers.
        self.web_input = WebInput(notebooks, self.input_connections)
        #: The page's trust dialog: the review of a notebook's dependencies, approvals.
        self.web_trust = WebTrust(notebooks)
        self.blobs = blobs
        self._document: bytes | None = None

    def endpoints(self) -> list[Endpoint]:
        """Every operation this API serves (the OpenAPI document's own included)."""
        return [
            *self.runtime_routes.endpoints(),
            *self.notebook_routes.endpoints(),
            *self.web_actions.endpoints(),
            *self.web_widgets.endpoints(),
            *self.web_input.endpoints(),
            *self.web_trust.endpoints(),
            *self._blob_endpoints(),
            Endpoint("GET", OPENAPI_PATH, self.get_openapi, "this document", None),
        ]

    def _blob_endpoints(self) -> list[Endpoint]:
        if self.blobs is None:
            return []
        summary = "a blob (a large output's content) by its sha256, as the blob server serves it"
        return [Endpoint("GET", "/blob/{hash}", self.get_blob, summary, None, binary=True)]

    def routes(self) -> list[web.RouteDef]:
        """For ``HttpServer.add_routes`` (not public)."""
        return [endpoint.route() for endpoint in self.endpoints()]

    def ws_routes(self) -> list[web.RouteDef]:
        """The page's input connection, ``/ws/input/{id}`` (a websocket: not in the
        OpenAPI document)."""
        return self.web_input.ws_routes()

    def openapi(self) -> bytes:
        """The OpenAPI 3.1 document, as JSON (built once)."""
        if self._document is None:
            endpoints = [*_daemon_endpoints(), *self.endpoints()]
            self._document = msgspec.json.encode(openapi_document(endpoints, __version__))
        return self._document

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi(), content_type="application/json")

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        """The blob server's answer (cacheable, sandboxed by its CSP), behind the token:
        clients that reach only this port resolve blob references here. JavaScript
        comes as text on this origin (the page's)."""
        assert self.blobs is not None
        digest = request.match_info["hash"]
        if not is_valid_hash(digest):
            raise RuntimedError("malformed blob hash: 64 lowercase hex digits", "invalid_hash")
        if not self.blobs.path(digest).is_file():
            raise RuntimedError(f"no blob {digest}", "not_found")
        return blob_response(self.blobs, request, scripts_as_text=True)


def _daemon_endpoints() -> list[Endpoint]:
    """The daemon's own routes (``daemon_routes``), described here, served there."""
    return [
        Endpoint(
            "GET",
            "/api/health",
            None,
            "whether the daemon answers (no token, no details)",
            None,
            public=True,
            name="health",
        ),
        Endpoint(
            "GET",
            "/api/status",
            None,
            "version, env pools, the kernel pool, open rooms",
            StatusBody,
            name="status",
        ),
    ]
