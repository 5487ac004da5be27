"""The notebook page's HTML: ``/`` (the open notebooks and runtimes), ``/notebooks/{id}``
and ``/sidecar/{runtime_id}`` (shells the script in ``/static`` fills; what they carry
is docs/web.md's contract), ``POST /notebooks`` (a new untitled notebook, from the
index's form) and ``/static/{name}``.

Every page is behind the token (the login link's cookie) and carries a CSP without
inline script: settings reach the script as ``data-*`` attributes of ``<body>``.
"""

from __future__ import annotations

import getpass
import html
import os
import uuid
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import hdrs, web

from runtimed.daemon.http.rest_execute import NotebookAccess, keep_alive
from runtimed.daemon.http.web_assets import WebAssets, default_assets
from runtimed.daemon.rooms.room_registry import validate_notebook_id
from runtimed.errors import RuntimedError
from runtimed.protocol.handshake import Handshake

#: Untitled notebooks made from the index, named as the REST API names its own.
UNTITLED_PREFIX = "untitled-"


def page_csp(blob_port: int | None) -> str:
    """The pages' Content-Security-Policy: scripts only from this origin's files, frames
    only from the blob server (the output frame), nothing loaded from elsewhere."""
    frames = f"http://127.0.0.1:{blob_port}" if blob_port else "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; "
        "connect-src 'self' ws://127.0.0.1:* ws://localhost:*; "
        f"frame-src {frames}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def notebook_path(notebook_id: str) -> str:
    """The page of a notebook (its id URL-encoded whole: a file's id is its path)."""
    return "/notebooks/" + quote(notebook_id, safe="")


def sidecar_path(runtime_id: str) -> str:
    return "/sidecar/" + quote(runtime_id, safe="")


class WebPages:
    """The HTML routes; ``blob_port`` gives the blob server's port once it runs."""

    def __init__(
        self,
        notebooks: NotebookAccess,
        blob_port: Callable[[], int | None],
        assets: WebAssets | None = None,
    ) -> None:
        self.notebooks = notebooks
        self.blob_port = blob_port
        self.assets = assets or default_assets()
        self.user = _user_name()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.post("/notebooks", self.new_notebook),
            web.get("/notebooks/{notebook_id:.+}", self.notebook_page),
            web.get("/sidecar/{runtime_id}", self.sidecar_page),
            web.get("/static/{name:.+}", self.static),
        ]

    # --- pages -----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        parts = await self.notebooks()
        rooms = sorted(parts.rooms.list(), key=lambda r: r.path or r.notebook_id)
        runtimes = parts.runtimes.list()
        notebook_items = "".join(
            f'<li><a href="{_attr(notebook_path(r.notebook_id))}">'
            f"{_text(r.path or r.notebook_id)}</a> <small>{r.active_peers} peers, "
            f"kernel {_text(r.kernel_status or 'not started')}</small></li>"
            for r in rooms
            if not r.notebook_id.startswith("runtime-")
        )
        runtime_items = "".join(
            f'<li><a href="{_attr(sidecar_path(r.runtime_id))}">{_text(r.runtime_id)}</a> '
            f"<small>{_text(r.kernel_name or '?')}, {_text(r.status)}</small></li>"
            for r in runtimes
        )
        body = (
            '<main class="runt-index"><h1>runtimed</h1>'
            '<form method="post" action="/notebooks"><button type="submit" '
            'id="new-notebook">New notebook</button></form>'
            f'<h2>Open notebooks</h2><ul id="notebooks">{notebook_items or "<li>none</li>"}</ul>'
            f'<h2>Runtimes</h2><ul id="runtimes">{runtime_items or "<li>none</li>"}</ul></main>'
        )
        return self._page("runtimed", {"page": "index"}, body, script=False)

    async def new_notebook(self, request: web.Request) -> web.Response:
        """The index's "New notebook": an untitled room, then its page (303)."""
        rooms = (await self.notebooks()).rooms
        handshake = Handshake(
            channel="notebook_sync", notebook_id=f"{UNTITLED_PREFIX}{uuid.uuid4().hex[:12]}"
        )
        room = await rooms.open(handshake)
        keep_alive(rooms, room)
        raise web.HTTPSeeOther(notebook_path(room.notebook_id))

    async def notebook_page(self, request: web.Request) -> web.Response:
        """The page of one notebook; its room is opened (a file's from the file) so that
        the websocket finds it, and closes again if nobody joins."""
        notebook_id = validate_notebook_id(request.match_info["notebook_id"])
        rooms = (await self.notebooks()).rooms
        if os.path.isabs(notebook_id) and not (
            os.path.exists(notebook_id) and not os.path.isfile(notebook_id)
        ):
            handshake = Handshake(channel="open_notebook", path=notebook_id)
        else:
            handshake = Handshake(channel="notebook_sync", notebook_id=notebook_id)
        room = await rooms.open(handshake)
        keep_alive(rooms, room)
        name = os.path.basename(room.file.path) if room.file.path else room.notebook_id
        data = self._live_data("notebook", room.notebook_id)
        # The room's epoch now: the page needs no REST round trip for it at start (a
        # GET of a 1,000-cell notebook holds the daemon's loop ~0.4 s, delaying the sync).
        data["epoch"] = room.epoch
        return self._page(name, data, "")

    async def sidecar_page(self, request: web.Request) -> web.Response:
        """The rich outputs of a runtime's executions (`runt run --sidecar`)."""
        runtimes = (await self.notebooks()).runtimes
        try:
            room_kernel = runtimes.find(request.match_info["runtime_id"])
        except RuntimedError as exc:
            return self._error_page(404 if exc.code == "not_found" else 400, exc.message)
        data = self._live_data("sidecar", room_kernel.room.notebook_id)
        data["runtime-id"] = room_kernel.runtime_id
        return self._page(f"runtime {room_kernel.runtime_id}", data, "")

    async def static(self, request: web.Request) -> web.StreamResponse:
        return self.assets.response(request, request.match_info["name"])

    # --- HTML ------------------------------------------------------------------------------

    def _live_data(self, page: str, notebook_id: str) -> dict[str, str]:
        quoted = quote(notebook_id, safe="")
        port = self.blob_port()
        return {
            "page": page,
            "notebook-id": notebook_id,
            "ws": f"/ws/notebooks/{quoted}",
            "runtime-ws": f"/ws/runtime/{quoted}",
            "output-frame": f"http://127.0.0.1:{port}/output-frame" if port else "",
            "blob-base": "/blob/",
            "user": self.user,
        }

    def _page(
        self, title: str, data: dict[str, str], content: str, *, script: bool = True
    ) -> web.Response:
        attrs = "".join(f' data-{key}="{_attr(value)}"' for key, value in data.items())
        css = f"/static/notebook.css?v={self.assets.version('notebook.css')}"
        js = f"/static/notebook.js?v={self.assets.version('notebook.js')}"
        tag = f'<script type="module" src="{_attr(js)}"></script>' if script else ""
        text = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_text(title)}</title>"
            f'<link rel="stylesheet" href="{_attr(css)}"></head>'
            f'<body{attrs}><div id="app">{content}</div>{tag}</body></html>\n'
        )
        return web.Response(text=text, content_type="text/html", headers=self._headers())

    def _error_page(self, status: int, message: str) -> web.Response:
        text = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>runtimed</title></head><body><p>{_text(message)}</p>"
            '<p><a href="/">open notebooks</a></p></body></html>\n'
        )
        return web.Response(
            status=status, text=text, content_type="text/html", headers=self._headers()
        )

    def _headers(self) -> dict[str, str]:
        return {
            hdrs.CONTENT_SECURITY_POLICY: page_csp(self.blob_port()),
            hdrs.CACHE_CONTROL: "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _text(value: str) -> str:
    return html.escape(value, quote=False)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "user"
