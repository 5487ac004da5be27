"""The blob HTTP server in-process: only its own Host, nothing a kernel printed runs on its
origin, media types that cannot split a header, correct ranges."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtimed.daemon.blobs import BlobStore
from runtimed.daemon.blobs.http_server import BlobHttpServer
from runtimed.errors import RuntimedError

HTML = b"<script>fetch('/blob/...')</script><b>kernel output</b>"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[BlobStore, int]]:
    store = BlobStore(tmp_path / "blobs", 2**20)
    server = BlobHttpServer(store, port=0)
    port = await server.start()
    yield store, port
    await server.close()


def get(port: int, path: str, host: str | None = None, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
    for name, value in headers.items():
        conn.putheader(name.replace("_", "-"), value)
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


async def fetch(
    port: int, path: str, host: str | None = None, **headers: str
) -> http.client.HTTPResponse:
    return await asyncio.to_thread(get, port, path, host, **headers)


async def test_only_its_own_host_is_answered(served: tuple[BlobStore, int]) -> None:
    store, port = served
    digest = store.put(b"data", "text/plain")
    assert (await fetch(port, f"/blob/{digest}")).status == 200
    for host in ("evil.example:80", f"localhost.evil.example:{port}", "", "127.0.0.1:1"):
        assert (await fetch(port, f"/blob/{digest}", host)).status == 421, host


async def test_active_content_is_sandboxed(served: tuple[BlobStore, int]) -> None:
    store, port = served
    for media_type in ("text/html", "image/svg+xml"):
        response = await fetch(port, f"/blob/{store.put(HTML, media_type)}")
        assert response.status == 200
        assert response.getheader("Content-Security-Policy", "").startswith("sandbox")
        assert response.getheader("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(
    "media_type", ["text/html\r\nSet-Cookie: x=1", "text/html\n", "nothing", "", "a/b c", "x" * 300]
)
async def test_bad_media_types_are_refused_on_put(tmp_path: Path, media_type: str) -> None:
    store = BlobStore(tmp_path / "blobs", 2**20)
    with pytest.raises(RuntimedError) as info:
        store.put(b"data", media_type)
    assert info.value.code == "invalid_media_type"


async def test_ranges(served: tuple[BlobStore, int]) -> None:
    store, port = served
    digest = store.put(b"0123456789", "application/octet-stream")
    assert (await fetch(port, f"/blob/{digest}", Range="bytes=-0")).status == 416
    tail = await fetch(port, f"/blob/{digest}", Range="bytes=-3")
    assert tail.status == 206 and tail.getheader("Content-Range") == "bytes 7-9/10"
    assert (await fetch(port, f"/blob/{digest}", Range="bytes=20-30")).status == 416
