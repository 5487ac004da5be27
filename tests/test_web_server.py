"""The daemon's side of the notebook page, end to end over HTTP (no browser): the login
link's redirect to a page, the page shells and their CSP, the output frame on the blob
server, the runtime document's read-only websocket, and complete/inspect/interrupt/
restart over REST with a real kernel."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from pycrdt import Doc, Map

from helpers import DaemonProcess, wait_until, write_notebook
from runtimed.daemon.http.tokens import mint_login_code
from runtimed.daemon.http.web_assets import ASSETS_DIR

pytestmark = pytest.mark.daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module, with one pool env for the notebook's kernel."""
    d = DaemonProcess(tmp_path_factory.mktemp("web") / "cache", ["--uv-pool-size", "1"])
    d.start()
    try:
        yield d
    finally:
        d.stop()


def http_url(daemon: DaemonProcess) -> str:
    from test_rest_daemon import http_address

    return http_address(daemon)


def token(daemon: DaemonProcess) -> str:
    return (daemon.cache_dir / "http-token").read_text().strip()


@pytest.fixture
async def browser(daemon: DaemonProcess) -> AsyncIterator[aiohttp.ClientSession]:
    """A client logged in as a browser is: the login link's cookie, nothing else."""
    url = http_url(daemon)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address
    async with aiohttp.ClientSession(base_url=url, cookie_jar=jar) as session:
        code = mint_login_code(token(daemon))
        async with session.get("/login", params={"code": code}, allow_redirects=False) as r:
            assert r.status == 303
        yield session


async def test_login_link_redirects_only_to_paths_of_this_server(daemon: DaemonProcess) -> None:
    url = http_url(daemon)
    page = "/notebooks/" + quote("/tmp/x.ipynb", safe="")
    targets = {
        page: page,
        "//evil.example/": "/",
        "/\t/evil.example/": "/",
        "/\\evil.example/": "/",
        "https://evil.example/": "/",
        "javascript:alert(1)": "/",
    }
    async with aiohttp.ClientSession(base_url=url) as session:
        for target, expected in targets.items():
            code = mint_login_code(token(daemon))
            params = {"code": code, "next": target}
            async with session.get("/login", params=params, allow_redirects=False) as r:
                assert r.status == 303, target
                assert r.headers["Location"] == expected, target
                assert "HttpOnly" in r.headers["Set-Cookie"]
                assert "SameSite=Strict" in r.headers["Set-Cookie"]


async def test_pages_need_the_cookie(daemon: DaemonProcess) -> None:
    async with aiohttp.ClientSession(base_url=http_url(daemon)) as anonymous:
        for path in ("/", "/notebooks/x", "/static/notebook.js", "/sidecar/abc"):
            async with anonymous.get(path) as r:
                assert r.status == 401, path


async def test_notebook_page_shell_and_csp(
    browser: aiohttp.ClientSession, daemon: DaemonProcess, tmp_path: Path
) -> None:
    path = tmp_path / "page.ipynb"
    write_notebook(path, "1 + 1")
    async with browser.get("/notebooks/" + quote(str(path), safe="")) as r:
        assert r.status == 200
        html = await r.text()
        csp = r.headers["Content-Security-Policy"]
        assert r.headers["Cache-Control"] == "no-store"
    with daemon.client() as client:
        blob_port = client.daemon_info().blob_port
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
    assert f"frame-src http://127.0.0.1:{blob_port};" in csp
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp
    quoted = quote(str(path), safe="")
    assert f'data-notebook-id="{path}"' in html
    assert f'data-ws="/ws/notebooks/{quoted}"' in html
    assert f'data-runtime-ws="/ws/runtime/{quoted}"' in html
    assert f'data-output-frame="http://127.0.0.1:{blob_port}/output-frame"' in html
    assert 'data-page="notebook"' in html and 'data-blob-base="/blob/"' in html
    async with browser.get("/api/notebooks/" + quote(str(path), safe="")) as r:
        assert f'data-epoch="{(await r.json())["epoch"]}"' in html
    # No inline script: the one script tag loads the bundle by URL.
    assert re.findall(r"<script[^>]*>", html) == [
        re.search(r'<script type="module" src="/static/notebook\.js\?v=\w+">', html)[0]  # type: ignore[index]
    ]
    # The page opened the file's room, listed on the index.
    async with browser.get("/") as r:
        index = await r.text()
    assert f'href="/notebooks/{quoted}"' in index
    assert str(path) in index


async def test_new_notebook_from_the_index_form(browser: aiohttp.ClientSession) -> None:
    origin = str(browser._base_url).rstrip("/")
    async with browser.post("/notebooks", headers={"Origin": origin}, allow_redirects=False) as r:
        assert r.status == 303
        location = r.headers["Location"]
    assert location.startswith("/notebooks/untitled-")
    async with browser.get(location) as r:
        assert r.status == 200 and 'data-page="notebook"' in await r.text()
    # A form posted from another site is refused (the Origin check).
    evil = {"Origin": "http://evil.example"}
    async with browser.post("/notebooks", headers=evil, allow_redirects=False) as r:
        assert r.status == 403


async def test_sidecar_page_of_a_runtime(
    browser: aiohttp.ClientSession, daemon: DaemonProcess, tmp_path: Path
) -> None:
    async with browser.get("/sidecar/nosuchruntime") as r:
        assert r.status == 404 and "nosuchruntime" in await r.text()
    daemon.wait_pool("uv", 1)
    with daemon.client() as client:
        runtime = client.start_runtime("python3", "auto", str(tmp_path))
    try:
        async with browser.get(f"/sidecar/{runtime.runtime_id[:4]}") as r:
            assert r.status == 200
            html = await r.text()
        assert 'data-page="sidecar"' in html
        assert f'data-runtime-id="{runtime.runtime_id}"' in html
        assert f'data-notebook-id="{runtime.notebook_id}"' in html
    finally:
        with daemon.client() as client:
            client.kill_runtimes([runtime.runtime_id])


async def test_static_names_are_checked(browser: aiohttp.ClientSession) -> None:
    for bad in ("../pyproject.toml", "..%2F..%2Fversion.py", ".hidden.js", "x.py", "a/b/c.js"):
        async with browser.get("/static/" + bad) as r:
            assert r.status == 404, bad
    if (ASSETS_DIR / "notebook.js").is_file():
        async with browser.get("/static/notebook.js") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/javascript")
            assert r.headers["Cache-Control"] == "no-cache"
            etag = r.headers["ETag"]
        async with browser.get("/static/notebook.js", headers={"If-None-Match": etag}) as r:
            assert r.status == 304


@pytest.mark.parametrize("name", ["output-frame", "widget-frame"])
async def test_frames_on_the_blob_server(daemon: DaemonProcess, name: str) -> None:
    with daemon.client() as client:
        # The blob server starts just after the socket answers.
        wait_until(lambda: client.daemon_info().blob_port, 10, what="the blob server")
        port = client.daemon_info().blob_port
    frame = f"http://127.0.0.1:{port}/{name}"
    async with aiohttp.ClientSession() as session, session.get(frame) as r:
        if not (ASSETS_DIR / f"{name}.html").is_file():
            assert r.status == 404
            return
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'unsafe-inline'" in csp and "default-src 'none'" in csp
        assert "Set-Cookie" not in r.headers


async def test_kernel_actions_over_rest(
    browser: aiohttp.ClientSession, daemon: DaemonProcess, tmp_path: Path
) -> None:
    path = tmp_path / "actions.ipynb"
    write_notebook(path, "import os\nanswer_value = 42")
    origin = {"Origin": str(browser._base_url).rstrip("/")}

    async def post(suffix: str, body: object = None, expect: int = 200) -> dict[str, object]:
        async with browser.post(f"{notebook}/{suffix}", json=body, headers=origin) as response:
            text = await response.text()
            assert response.status == expect, text
            return dict(json.loads(text))

    async with browser.post("/api/notebooks", json={"path": str(path)}, headers=origin) as r:
        opened = await r.json()
    notebook = "/api/notebooks/" + quote(opened["notebook_id"], safe="")
    # No kernel yet: nothing to complete, none started for it.
    empty = await post("complete", {"code": "answer_va", "cursor_pos": 9})
    assert empty["matches"] == [] and empty["cursor_start"] == 9
    assert (await post("inspect", {"code": "os"}))["found"] is False
    assert (await post("interrupt"))["cancelled"] == 0
    await post("complete", {"code": "x", "cursor_pos": 5}, expect=400)

    daemon.wait_pool("uv", 1)
    async with browser.get(notebook) as r:
        (cell,) = (await r.json())["cells"]
    run = f"{notebook}/cells/{cell['id']}/execute"
    async with browser.post(run, params={"wait": "90"}, headers=origin) as r:
        assert (await r.json())["execution"]["status"] == "done"
    found = await post("complete", {"code": "answer_va", "cursor_pos": 9})
    assert "answer_value" in found["matches"] and found["cursor_start"] == 0
    help_ = await post("inspect", {"code": "os.path.join", "cursor_pos": 12})
    assert help_["found"] is True and "join" in str(help_["data"]["text/plain"])
    restarted = await post("restart")
    assert restarted["lifecycle"] == "running"
    after = await post("complete", {"code": "answer_va"})
    assert "answer_value" not in after["matches"]  # a new kernel: the name is gone
    async with browser.get("/api/openapi.json") as r:
        paths = (await r.json())["paths"]
    for action in ("interrupt", "restart", "complete", "inspect"):
        assert "post" in paths[f"/api/notebooks/{{id}}/{action}"]


async def test_runtime_websocket_is_read_only(
    browser: aiohttp.ClientSession, daemon: DaemonProcess
) -> None:
    origin = str(browser._base_url).rstrip("/")
    async with browser.post("/api/notebooks", json={}, headers={"Origin": origin}) as r:
        notebook_id = (await r.json())["notebook_id"]
    url = f"{origin}/ws/runtime/{quote(notebook_id, safe='')}"
    forger: Doc = Doc()
    forger.get("kernel", type=Map)["lifecycle"] = "forged"
    forged = _var_bytes(forger.get_update())
    async with browser.ws_connect(url, headers={"Origin": origin}) as ws:
        await ws.send_bytes(b"\x00\x02" + forged)  # step 2
        await ws.send_bytes(b"\x00\x01" + forged)  # update
        await ws.send_bytes(b"\x01" + _var_bytes(b"\x00"))  # awareness: dropped too
        await _read_state(ws)  # the round trip: what was sent before is handled
    async with browser.ws_connect(url, headers={"Origin": origin}) as ws:
        doc = await _read_state(ws)
    kernel = doc.get("kernel", type=Map)
    assert kernel.get("lifecycle") in ("not_started", None), dict(kernel)
    async with browser.get("/api/notebooks/" + quote(notebook_id, safe="")) as r:
        assert r.status == 200


async def _read_state(ws: aiohttp.ClientWebSocketResponse) -> Doc:
    """Sync step 1 with nothing, until the server's step 2 (its whole state)."""
    await ws.send_bytes(b"\x00\x00" + _var_bytes(b"\x00"))
    doc: Doc = Doc()
    async with asyncio.timeout(10):
        while True:
            message = await ws.receive_bytes()
            assert message[0] == 0  # sync only: no notebook, no awareness, no events
            if message[1] == 1:
                doc.apply_update(_read_var_bytes(message[2:]))
                return doc


def _var_bytes(data: bytes) -> bytes:
    return _var_uint(len(data)) + data


def _var_uint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_var_bytes(data: bytes) -> bytes:
    length, shift, i = 0, 0, 0
    while True:
        byte = data[i]
        length |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if byte < 0x80:
            break
    return data[i : i + length]
