"""``WebAssets``: the notebook page's built files (``src/runtimed/web_assets``, made by
``web/build.mjs``, shipped in the wheel), served at ``/static/{name}``, and the output
and widget frames the blob server serves on its own origin.

Names are checked before they touch a path: one optional folder level, each part
starting with a letter or digit (so no ``..`` and no hidden files), a known suffix only
(never ``.html``: a page from this origin would escape the page's CSP). Each file's ETag
is its sha256; a URL carrying ``?v=<that sha256's head>`` is cached for a year, others
are revalidated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

#: Where the built page lives (inside the package: `pip install -e .` needs no node).
ASSETS_DIR = Path(__file__).resolve().parents[2] / "web_assets"
OUTPUT_FRAME = "output-frame.html"
WIDGET_FRAME = "widget-frame.html"
#: Length of the ``?v=`` version: enough of the sha256 to tell builds apart.
VERSION_CHARS = 16
IMMUTABLE = "public, max-age=31536000, immutable"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?$")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
#: Static files are scripts, styles and fonts, never documents: opened directly, one
#: runs nothing (an SVG's script would otherwise run on the page's origin).
STATIC_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"
#: The output frame runs kernel output's scripts, on the blob server's origin and in a
#: sandboxed iframe (an opaque origin): its own inline script and whatever the outputs
#: bring (inline scripts and styles, data: images, fonts). It may fetch nothing.
OUTPUT_FRAME_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; media-src data: blob:"
)
#: The widget frame runs an anywidget's module (the kernel's code, as an output's script
#: is), in the same kind of sandbox: its own inline script, the module the page posts
#: (imported from a blob: URL) and what that module imports or loads over HTTPS (widgets
#: commonly import their libraries from a CDN). A widget lives only while a kernel the
#: person started runs it; the frame still reaches neither the page nor the daemon.
WIDGET_FRAME_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval' blob: https:; "
    "style-src 'unsafe-inline' blob: https:; img-src data: blob: https:; font-src data: https:; "
    "media-src data: blob: https:; connect-src https:; worker-src blob:"
)


@dataclass(frozen=True)
class Asset:
    """One file's bytes and sha256 (read once per change of its mtime and size)."""

    body: bytes
    digest: str
    stamp: tuple[int, int]

    @property
    def version(self) -> str:
        return self.digest[:VERSION_CHARS]


class WebAssets:
    """The files of ``root`` by validated name, with their hashes."""

    def __init__(self, root: Path = ASSETS_DIR) -> None:
        self.root = root
        self._cache: dict[str, Asset] = {}

    def get(self, name: str) -> Asset | None:
        """The asset ``name`` (``notebook.js``, ``fonts/x.woff2``), or None if it is not a
        valid name of a servable file that exists."""
        if not _NAME.match(name) or Path(name).suffix not in CONTENT_TYPES:
            return None
        return self._read(name)

    def version(self, name: str) -> str:
        """``?v=`` for ``name``'s URL ("0" when the bundle is not built)."""
        asset = self._read(name)
        return asset.version if asset is not None else "0"

    def _read(self, name: str) -> Asset | None:
        path = self.root / name
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(name)
        if cached is not None and cached.stamp == stamp:
            return cached
        if not path.is_file():
            return None
        body = path.read_bytes()
        asset = Asset(body, hashlib.sha256(body).hexdigest(), stamp)
        self._cache[name] = asset
        return asset

    def response(self, request: web.Request, name: str) -> web.StreamResponse:
        """``GET /static/{name}``: 404 for a bad or unknown name; 304 when the browser's
        copy is current."""
        asset = self.get(name)
        if asset is None:
            raise web.HTTPNotFound(text=f"no static file {name[:100]!r}")
        versioned = request.query.get("v") == asset.version
        headers = {
            hdrs.CONTENT_TYPE: CONTENT_TYPES[Path(name).suffix],
            hdrs.CACHE_CONTROL: IMMUTABLE if versioned else "no-cache",
            hdrs.ETAG: f'"{asset.digest}"',
            hdrs.CONTENT_SECURITY_POLICY: STATIC_CSP,
            "X-Content-Type-Options": "nosniff",
        }
        return _body_or_not_modified(request, asset, headers)

    def output_frame(self, request: web.Request) -> web.StreamResponse:
        """``GET /output-frame`` on the blob server: the sandboxed renderer of HTML, JS
        and SVG outputs. It sets no cookie and needs none."""
        return self._frame(request, OUTPUT_FRAME, OUTPUT_FRAME_CSP)

    def widget_frame(self, request: web.Request) -> web.StreamResponse:
        """``GET /widget-frame`` on the blob server: the sandbox an anywidget's module
        runs in (web/src/frame/widget_frame.ts)."""
        return self._frame(request, WIDGET_FRAME, WIDGET_FRAME_CSP)

    def _frame(self, request: web.Request, name: str, csp: str) -> web.StreamResponse:
        asset = self._read(name)
        if asset is None:
            raise web.HTTPNotFound(text="the web page is not built (web/build.mjs)")
        headers = {
            hdrs.CONTENT_TYPE: "text/html; charset=utf-8",
            hdrs.CACHE_CONTROL: "no-cache",
            hdrs.ETAG: f'"{asset.digest}"',
            hdrs.CONTENT_SECURITY_POLICY: csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        return _body_or_not_modified(request, asset, headers)


def _body_or_not_modified(
    request: web.Request, asset: Asset, headers: dict[str, str]
) -> web.StreamResponse:
    if asset.digest in request.headers.get(hdrs.IF_NONE_MATCH, ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers=headers)


_default: WebAssets | None = None


def default_assets() -> WebAssets:
    """The package's assets (one cache per process)."""
    global _default
    if _default is None:
        _default = WebAssets()
    return _default
