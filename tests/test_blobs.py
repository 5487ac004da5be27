"""Blob store, output references, the localhost HTTP read server and the blob channel."""

from __future__ import annotations

import base64
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest

import runtimed
from helpers import DaemonProcess, wait_until
from runtimed.client.blobs import BlobClient
from runtimed.daemon.blobs import BlobStore, BlobTooLargeError
from runtimed.documents.blob_refs import is_ref
from runtimed.errors import RuntimedError

PNG = b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(200_000)
BIG_TEXT = "".join(f"{i:07d} " + "x" * 91 + "\n" for i in range(6000))  # 600,000 chars
MEDIUM_TEXT = "y" * 4999 + "\n"


# --- the store ------------------------------------------------------------------------


def test_store_put_get_meta_sharding_and_idempotence(tmp_path: Path):
    store = BlobStore(tmp_path / "blobs", max_size=1000)
    digest = store.put(b"hello", "text/plain")
    assert digest == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    path = tmp_path / "blobs" / digest[:2] / digest[2:]
    assert path.read_bytes() == b"hello" and store.get(digest) == b"hello"
    meta = store.meta(digest)
    assert (meta.media_type, meta.size) == ("text/plain", 5) and meta.created_at > 0
    assert store.put(b"hello", "text/plain") == digest  # idempotent
    assert store.hashes() == [digest]
    assert not list((tmp_path / "blobs").rglob("*.tmp"))
    with pytest.raises(BlobTooLargeError, match="maximum blob size of 1000"):
        store.put(b"z" * 1001)
    for bad in ("../../etc/passwd", "ABC", "g" * 64, digest.upper(), digest + "0", ""):
        with pytest.raises(RuntimedError):
            store.get(bad)
    with pytest.raises(RuntimedError, match="no blob"):
        store.get("0" * 64)


def test_gc_keeps_referenced_and_young_blobs(tmp_path: Path):
    store = BlobStore(tmp_path / "blobs")
    kept, dropped, young = store.put(b"kept"), store.put(b"dropped"), store.put(b"young")
    old = time.time() - 7200
    for digest in (kept, dropped):
        os.utime(store.path(digest), (old, old))
    removed = store.gc({kept}, grace_secs=3600)
    assert removed == [dropped]
    assert store.has(kept) and store.has(young) and not store.has(dropped)
    assert not store.path(dropped).with_name(dropped[2:] + ".meta").exists()


# --- through a daemon -----------------------------------------------------------------


@pytest.fixture(scope="module")
def blob_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("blobs") / "cache", ["--uv-pool-size", "1"])
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def _port(d: DaemonProcess) -> int:
    """The HTTP port, once the server (started after the socket) is up."""

    def port() -> int | None:
        with d.client() as c:
            return c.daemon_info().blob_port

    found = wait_until(port, 20, what="the blob HTTP server")
    assert isinstance(found, int)
    return found


def _http(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.mark.daemon
def test_large_outputs_become_refs_and_resolve(blob_daemon: DaemonProcess, tmp_path: Path):
    s = runtimed.Session("blob-outputs", socket_path=blob_daemon.socket_path).connect()
    r = s.run(
        "import random\nfrom IPython.display import Image, HTML, display\n"
        "png = b'\\x89PNG\\r\\n\\x1a\\n' + random.Random(7).randbytes(200_000)\n"
        "display(Image(data=png, format='png'))\n"
        "print(''.join(f'{i:07d} ' + 'x' * 91 + '\\n' for i in range(6000)), end='')\n"
        "display(HTML('<b>' + 'h' * 3000 + '</b>'))\n"
        "import sys; print('y' * 4999, file=sys.stderr)\n"
        "'small'"
    )
    assert r.success, r.error
    # The API gives full content back.
    assert r.stdout == BIG_TEXT
    assert r.stderr == MEDIUM_TEXT
    image = r.display_data[0]
    assert base64.b64decode(image.data["image/png"]) == PNG
    assert r.display_data[1].data["text/html"] == "<b>" + "h" * 3000 + "</b>"
    assert r.display_data[-1].data["text/plain"] == "'small'"
    # The document holds references, not payloads.
    raw = s.document.get_cell(r.cell_id).outputs  # the replica: what the document holds
    by_kind = {(o["output_type"], o.get("name")): o for o in raw}
    png_ref = raw[0]["data"]["image/png"]
    assert is_ref(png_ref) and png_ref["size"] == len(PNG)
    assert png_ref["media_type"] == "image/png"
    assert is_ref(raw[2]["data"]["text/html"])
    stdout_text = by_kind[("stream", "stdout")]["text"]
    parts = stdout_text if isinstance(stdout_text, list) else [stdout_text]
    assert all(is_ref(p) for p in parts) and sum(p["size"] for p in parts) == len(BIG_TEXT)
    assert is_ref(by_kind[("stream", "stderr")]["text"])
    assert raw[-1]["data"]["text/plain"] == "'small'"  # small stays inline
    assert len(str(raw)) < 5000
    # get_outputs resolves too; over HTTP the image is byte-exact with its type.
    resolved = s.get_outputs(r.cell_id)
    assert base64.b64decode(resolved[0]["data"]["image/png"]) == PNG
    port = _port(blob_daemon)
    status, headers, body = _http(port, f"/blob/{png_ref['blob']}")
    assert status == 200 and body == PNG
    assert headers["content-type"] == "image/png"
    assert headers["x-content-type-options"] == "nosniff"
    assert "immutable" in headers["cache-control"]
    assert headers["etag"] == f'"{png_ref["blob"]}"'
    status, headers, body = _http(port, f"/blob/{png_ref['blob']}", {"Range": "bytes=0-7"})
    assert status == 206 and body == PNG[:8]
    status, _, _ = _http(port, f"/blob/{png_ref['blob']}", {"If-None-Match": headers["etag"]})
    assert status == 304
    text = b"".join(_http(port, f"/blob/{p['blob']}")[2] for p in parts)
    assert text.decode() == BIG_TEXT
    # Saving inlines everything: an ordinary, valid .ipynb.
    target = tmp_path / "saved.ipynb"
    s.save(target)
    nb = nbformat.read(target, as_version=4)
    nbformat.validate(nb)
    outs = nb.cells[-1].outputs
    assert base64.b64decode(outs[0]["data"]["image/png"]) == PNG
    saved_stdout = "".join(o["text"] for o in outs if o.get("name") == "stdout")
    assert saved_stdout == BIG_TEXT
    assert '"blob":' not in target.read_text()
    s.close()


@pytest.mark.daemon
def test_one_huge_message_of_each_kind_arrives_whole(blob_daemon: DaemonProcess):
    """Messages over a megabyte take the daemon's off-loop path: a 3 MB print of
    escapes and non-ASCII text, continued by a later print on the same line, and 2 MB
    image and HTML payloads come back exactly, as references in the document."""
    s = runtimed.Session("huge-messages", socket_path=blob_daemon.socket_path).connect()
    r = s.run(
        "import random\nfrom IPython.display import Image, HTML, display\n"
        "line = 'tab\\there \"quoted\" é 日本 😀 \\\\ back\\n'\n"
        "print(line * 80_000 + 'unfinished ', end='')\n"
        "print('line')\n"
        "png = b'\\x89PNG\\r\\n\\x1a\\n' + random.Random(8).randbytes(1_500_000)\n"
        "display(Image(data=png, format='png'))\n"
        "display(HTML('<p>' + 'ü' * 1_000_000 + '</p>'))\n"
    )
    assert r.success, r.error
    line = 'tab\there "quoted" é 日本 😀 \\ back\n'
    assert r.stdout == line * 80_000 + "unfinished line\n"
    png = b"\x89PNG\r\n\x1a\n" + random.Random(8).randbytes(1_500_000)
    assert base64.b64decode(r.display_data[0].data["image/png"]) == png
    assert r.display_data[1].data["text/html"] == "<p>" + "ü" * 1_000_000 + "</p>"
    raw = s.document.get_cell(r.cell_id).outputs
    assert is_ref(raw[1]["data"]["image/png"]) and is_ref(raw[2]["data"]["text/html"])
    assert len(str(raw)) < 5000
    s.close()


@pytest.mark.daemon
def test_http_rejects_traversal_and_malformed_hashes(blob_daemon: DaemonProcess):
    port = _port(blob_daemon)
    assert _http(port, "/health")[0] == 200
    for path in (
        "/blob/../../etc/passwd",
        "/blob/..%2F..%2Fetc%2Fpasswd",
        "/blob/%2e%2e/%2e%2e/etc/passwd",
        "/blob/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/blob/" + "A" * 64,
        "/blob/" + "0" * 63,
        "/blob/" + "0" * 64 + ".meta",
        "/blob/",
    ):
        status, _, body = _http(port, path)
        assert status in (400, 404), path
        assert b"root:" not in body
    assert _http(port, "/blob/" + "0" * 63)[0] == 400
    assert _http(port, "/blob/" + "0" * 64)[0] == 404


@pytest.mark.daemon
def test_http_listens_on_loopback_only(blob_daemon: DaemonProcess):
    port = _port(blob_daemon)
    assert blob_daemon.proc is not None
    listening = [
        c
        for c in psutil.Process(blob_daemon.proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)
    assert any(c.laddr.port == port for c in listening)
    wait_until(
        lambda: f'"blob_port": {port}' in (blob_daemon.cache_dir / "daemon.json").read_text(),
        10,
        what="daemon.json to name the blob port",
    )


@pytest.mark.daemon
def test_blob_channel_put_get_and_errors(blob_daemon: DaemonProcess):
    data = random.Random(3).randbytes(3 * 1024 * 1024)
    with BlobClient(blob_daemon.socket_path) as blobs:
        digest = blobs.put(data, "application/x-test")
        assert blobs.put(data, "application/x-test") == digest
        blobs.cache = type(blobs.cache)()  # not from the cache: the daemon's file
        assert blobs.get(digest) == data
        assert blobs._channel.handshake["blob_dir"] == str(blob_daemon.cache_dir / "blobs")
        assert blobs._channel.run(blobs._calls.get(digest)) == data  # and over the socket
        with pytest.raises(RuntimedError, match="malformed"):
            blobs.get("../etc/passwd")
        with pytest.raises(RuntimedError, match="no blob"):
            blobs.get("f" * 64)
        assert blobs.get(digest) == data  # the connection survives errors
    status, headers, body = _http(_port(blob_daemon), f"/blob/{digest}")
    assert status == 200 and body == data and headers["content-type"] == "application/x-test"


@pytest.mark.daemon
def test_daemon_gc_removes_unreferenced_keeps_referenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RUNTIMED_BLOB_GC_INTERVAL", "0.2")
    d = DaemonProcess(tmp_path / "cache", ["--uv-pool-size", "0"]).start()
    try:
        from runtimed.client.settings_client import SettingsClient

        with BlobClient(d.socket_path) as blobs:
            kept = blobs.put(b"referenced by a document", "text/plain")
            dropped = blobs.put(b"referenced by nobody", "text/plain")
        s = runtimed.Session("gc-room", socket_path=d.socket_path).connect()
        s.create_cell(f"# see blob {kept}")
        with SettingsClient(d.socket_path) as settings:
            settings.set("blob_gc_grace_secs", 0)
        store = BlobStore(d.cache_dir / "blobs")
        wait_until(lambda: not store.has(dropped), 20, what="unreferenced blob collected")
        time.sleep(0.5)
        assert store.has(kept)
        s.close()
    finally:
        d.stop()


@pytest.mark.daemon
def test_a_notebook_with_huge_inline_outputs_opens(
    blob_daemon: DaemonProcess, tmp_path: Path
) -> None:
    """70 MB of inline stream output (over the 64 MiB frame cap) and a 5 MB image: the
    outputs move to blobs as the file loads, the document stays small."""
    import nbformat

    stream = "x" * 1023 + "\n"
    stream *= 70_000  # 70 MB in 1 KB lines
    png = base64.b64encode(PNG + bytes(5_000_000)).decode()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("big()")]
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=stream),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "img"}),
    ]
    path = tmp_path / "huge.ipynb"
    nbformat.write(nb, path)
    with runtimed.Session.open(path, socket_path=blob_daemon.socket_path) as s:
        raw = s.document.get_cells()[0].outputs
        assert is_ref(raw[0]["text"][0]) and is_ref(raw[1]["data"]["image/png"])
        assert len(s.document.doc.get_update()) < 100_000
        cell = s.get_cells()[0]
        # (compared by length and hash: a failing == on 70 MB strings makes pytest diff them)
        assert digest(cell.outputs[0].text) == digest(stream)
        assert digest(cell.outputs[1].data["image/png"]) == digest(png)
        s.save(tmp_path / "copy.ipynb")
    copy = nbformat.read(tmp_path / "copy.ipynb", as_version=4)
    assert digest(copy.cells[0].outputs[0].text) == digest(stream)


def digest(text: str | None) -> tuple[int, str]:
    import hashlib

    data = (text or "").encode()
    return len(data), hashlib.sha256(data).hexdigest()


@pytest.mark.daemon
def test_a_huge_file_that_is_not_a_notebook_is_refused_clearly(
    blob_daemon: DaemonProcess, tmp_path: Path
) -> None:
    """Files over 16 MB are parsed by a helper process; its errors read as the daemon's."""
    path = tmp_path / "junk.ipynb"
    path.write_text('{"cells": [' + '"x", ' * 4_000_000)  # 20 MB, cut short
    with pytest.raises(RuntimedError, match="is not a notebook") as refused:
        runtimed.Session.open(path, socket_path=blob_daemon.socket_path).connect()
    assert refused.value.code == "invalid_notebook"
    with runtimed.Session(socket_path=blob_daemon.socket_path) as s:
        assert s.create_cell("still serving")
