"""The blob read server: aiohttp on 127.0.0.1, ``GET /blob/{hash}``, ``GET /health``,
``GET /output-frame`` and ``GET /widget-frame`` (the notebook page's output renderer and
anywidget sandbox, on this other origin).

Blobs are immutable and named by their hash, so responses are cacheable forever. The
hash is validated before any path is built: malformed names get 400, unknown ones 404,
and nothing outside the store can be served.

Kernel output is not trusted content: a request must name this server in its Host header
(a DNS-rebinding page cannot), and every response carries a sandboxing
Content-Security-Policy, so HTML or SVG a kernel printed never runs scripts on this origin.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from typing import Any

from aiohttp import hdrs, web

from runtimed.daemon.blobs.blob_store import BlobStore, is_valid_hash, is_valid_media_type

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_TYPE = "application/octet-stream"
DEFAULT_PREFERRED_PORT = 39217
IMMUTABLE = "public, max-age=31536000, immutable"
#: No scripts, no plugins, no requests elsewhere: a blob renders, it never acts.
SANDBOX = "sandbox; default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"
_SUFFIX_RANGE = re.compile(r"^bytes=-(\d+)$")


def preferred_port() -> int:
    value = os.environ.get("RUNTIMED_BLOB_PORT", "")
    return int(value) if value.isdigit() else DEFAULT_PREFERRED_PORT


class _BlobFileResponse(web.FileResponse):
    """A FileResponse (ranges, sendfile) whose ETag is the blob's hash."""

    def __init__(self, path: Any, digest: str, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._digest = digest

    @property  # type: ignore[override]
    def etag(self) -> Any:
        return self._headers.get(hdrs.ETAG)

    @etag.setter
    def etag(self, value: Any) -> None:
        self._headers[hdrs.ETAG] = f'"{self._digest}"'


class BlobHttpServer:
    def __init__(self, store: BlobStore, port: int | None = None) -> None:
        self.store = store
        self.preferred = preferred_port() if port is None else port
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._only_our_host])
        app.router.add_get("/health", self._health)
        app.router.add_get("/blob/{hash}", self._blob)
        app.router.add_get("/output-frame", self._output_frame)
        app.router.add_get("/widget-frame", self._widget_frame)
        return app

    async def start(self) -> int:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        for port in (self.preferred, 0):
            site = web.TCPSite(runner, HOST, port, reuse_address=False)
            try:
                await site.start()
            except OSError as exc:
                if port == 0 or exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    await runner.cleanup()
                    raise
                log.info("blob port %d is taken; using an ephemeral port", port)
                continue
            server = site._server
            assert server is not None
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1]) if sockets else port
            break
        self._runner = runner
        log.info("blob server on http://%s:%s", HOST, self.port)
        assert self.port is not None
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _only_our_host(self, request: web.Request, handler: Any) -> web.StreamResponse:
        allowed = {HOST, f"{HOST}:{self.port}"}
        if request.headers.get(hdrs.HOST, "") not in allowed:
            return web.Response(status=421, text=f"this server answers only to {HOST}:{self.port}")
        return await handler(request)  # type: ignore[no-any-return]

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        return blob_response(self.store, request)

    async def _output_frame(self, request: web.Request) -> web.StreamResponse:
        """The notebook page's sandboxed renderer of HTML/JS/SVG outputs: on this port,
        so on an origin other than the page's (docs/web.md)."""
        from runtimed.daemon.http.web_assets import default_assets

        return default_assets().output_frame(request)

    async def _widget_frame(self, request: web.Request) -> web.StreamResponse:
        """The sandbox an anywidget's module runs in (docs/web.md)."""
        from runtimed.daemon.http.web_assets import default_assets

        return default_assets().widget_frame(request)


#: JavaScript MIME types (WHATWG): what a ``<script src>`` would run.
_SCRIPT_TYPES = frozenset(
    {
        "application/ecmascript", "application/javascript", "application/x-ecmascript",
        "application/x-javascript", "text/ecmascript", "text/javascript", "text/jscript",
        "text/livescript", "text/x-ecmascript", "text/x-javascript",
    }
)  # fmt: skip


def is_script_type(media_type: str) -> bool:
    essence = media_type.split(";", 1)[0].strip().lower()
    return essence in _SCRIPT_TYPES or essence.startswith("text/javascript")


def blob_response(
    store: BlobStore, request: web.Request, *, scripts_as_text: bool = False
) -> web.StreamResponse:
    """``GET /blob/{hash}`` of ``store`` (here, and behind the token on the daemon's HTTP
    server). ``scripts_as_text``: JavaScript is served as ``text/plain`` (with nosniff a
    browser will not run it): on the notebook page's own origin, whose CSP allows its
    scripts (``'self'``), a kernel's JavaScript (an anywidget's module) must never be
    a script the page could be made to load."""
    digest = request.match_info.get("hash", "")
    if not is_valid_hash(digest):
        raise web.HTTPBadRequest(text="malformed blob hash: expected 64 lowercase hex digits")
    path = store.path(digest)
    if not path.is_file():
        raise web.HTTPNotFound(text="no such blob")
    meta = store.meta(digest)
    media_type = meta.media_type if is_valid_media_type(meta.media_type) else DEFAULT_TYPE
    if scripts_as_text and is_script_type(media_type):
        media_type = "text/plain; charset=utf-8"
    headers = {
        hdrs.CONTENT_TYPE: media_type,
        hdrs.CACHE_CONTROL: IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        hdrs.CONTENT_SECURITY_POLICY: SANDBOX,
        hdrs.ETAG: f'"{digest}"',
    }
    suffix = _SUFFIX_RANGE.match(request.headers.get(hdrs.RANGE, ""))
    if suffix is not None and int(suffix.group(1)) == 0:  # "the last 0 bytes": none
        size = path.stat().st_size
        headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    if_none_match = request.headers.get(hdrs.IF_NONE_MATCH, "")
    if digest in if_none_match or if_none_match.strip() == "*":
        return web.Response(status=304, headers={k: v for k, v in headers.items()})
    return _BlobFileResponse(path, digest, headers=headers)
