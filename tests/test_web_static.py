"""The notebook page's static files and the login redirect's target, in process: which
names reach a file, the headers of each answer, and which ``next`` stays on the server."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from runtimed.daemon.http.http_server import _safe_next
from runtimed.daemon.http.web_assets import OUTPUT_FRAME_CSP, WIDGET_FRAME_CSP, WebAssets
from runtimed.daemon.http.web_pages import page_csp


@pytest.fixture
def assets(tmp_path: Path) -> WebAssets:
    root = tmp_path / "web_assets"
    (root / "fonts").mkdir(parents=True)
    (root / "notebook.js").write_text("export {};\n")
    (root / "fonts" / "a.woff2").write_bytes(b"font")
    (root / "output-frame.html").write_text("<script>1</script>")
    (root / "widget-frame.html").write_text("<script>2</script>")
    (root / ".hidden.js").write_text("secret")
    (tmp_path / "outside.js").write_text("outside")
    return WebAssets(root)


@pytest.mark.parametrize(
    "name",
    ["../outside.js", "fonts/../../outside.js", ".hidden.js", "output-frame.html", "x.py",
     "fonts", "a/b/c.js", "/etc/passwd.js", "notebook.js\x00.css", "missing.js"],
)  # fmt: skip
def test_only_valid_names_of_servable_files_resolve(assets: WebAssets, name: str) -> None:
    assert assets.get(name) is None


def test_static_answers_cache_by_version_and_etag(assets: WebAssets) -> None:
    asset = assets.get("notebook.js")
    assert asset is not None and assets.get("fonts/a.woff2") is not None
    version = assets.version("notebook.js")
    pinned = assets.response(
        make_mocked_request("GET", f"/static/notebook.js?v={version}"), "notebook.js"
    )
    assert pinned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert pinned.headers["Content-Type"].startswith("text/javascript")
    assert pinned.headers["X-Content-Type-Options"] == "nosniff"
    assert pinned.headers["Content-Security-Policy"].startswith("sandbox")
    plain = assets.response(make_mocked_request("GET", "/static/notebook.js"), "notebook.js")
    assert plain.headers["Cache-Control"] == "no-cache"
    etag = plain.headers["ETag"]
    request = make_mocked_request("GET", "/static/notebook.js", headers={"If-None-Match": etag})
    assert assets.response(request, "notebook.js").status == 304
    assert assets.version("missing.js") == "0"


def test_a_changed_file_is_read_again(assets: WebAssets) -> None:
    before = assets.version("notebook.js")
    (assets.root / "notebook.js").write_text("export const changed = 1;\n")
    assert assets.version("notebook.js") != before


def test_the_output_frame_runs_its_script_and_fetches_nothing(assets: WebAssets) -> None:
    frame = assets.output_frame(make_mocked_request("GET", "/output-frame"))
    assert frame.headers["Content-Security-Policy"] == OUTPUT_FRAME_CSP
    assert "script-src 'unsafe-inline'" in OUTPUT_FRAME_CSP
    assert "connect-src" not in OUTPUT_FRAME_CSP and "default-src 'none'" in OUTPUT_FRAME_CSP
    assert "Set-Cookie" not in frame.headers
    assert frame.headers["Content-Type"].startswith("text/html")


def test_the_widget_frame_imports_a_module_but_reaches_no_local_server(
    assets: WebAssets,
) -> None:
    frame = assets.widget_frame(make_mocked_request("GET", "/widget-frame"))
    assert frame.headers["Content-Security-Policy"] == WIDGET_FRAME_CSP
    assert frame.body == b"<script>2</script>" and "Set-Cookie" not in frame.headers
    directives = dict(d.strip().split(" ", 1) for d in WIDGET_FRAME_CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert "blob:" in directives["script-src"]  # the module the page posts
    # The page, the daemon and the blob server are http: no directive names them.
    assert "http:" not in WIDGET_FRAME_CSP and "127.0.0.1" not in WIDGET_FRAME_CSP
    assert "'self'" not in WIDGET_FRAME_CSP


def test_the_pages_csp_has_no_inline_script() -> None:
    csp = page_csp(39217)
    assert "script-src 'self';" in csp and "frame-src http://127.0.0.1:39217;" in csp
    assert "frame-src 'none'" in page_csp(None)


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/notebooks/%2Fa.ipynb", "/notebooks/%2Fa.ipynb"), ("/?x=1", "/?x=1"),
     ("//evil.example", "/"), ("/\t/evil.example", "/"), ("/\\evil.example", "/"),
     ("/\n/evil.example", "/"), ("https://evil.example/", "/"), ("evil", "/"),
     ("/a b", "/"), ("", "/")],
)  # fmt: skip
def test_login_goes_only_to_paths_of_this_server(target: str, expected: str) -> None:
    assert _safe_next(target) == expected
