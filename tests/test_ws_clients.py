"""Every client over both transports (a matrix, not a copy): the Unix socket and the
daemon's HTTP ``/ws``; a remote Session sees a socket Session's edits live; a Yjs client
joins a room at ``/ws/notebooks/{id}``; ``runt --url --token-file``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Provider

from helpers import DaemonProcess, wait_until
from runtimed.client.blobs import BlobClient
from runtimed.client.daemon_client import DaemonClient
from runtimed.client.session import Session
from runtimed.client.settings_client import SettingsClient
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError

pytestmark = pytest.mark.daemon

TRANSPORTS = ["socket", "ws"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon with a uv pool of 1 and its HTTP server, for the whole module."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("ws") / "cache", ["--uv-pool-size", "1"])
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def http_url(daemon: DaemonProcess) -> str:
    def started() -> str | None:
        with DaemonClient(daemon.socket_path, autostart=False) as client:
            return client.daemon_info().http_url

    wait_until(started, 30, what="the daemon's HTTP server")
    url = started()
    assert url is not None
    return url


def token(daemon: DaemonProcess) -> str:
    return (daemon.cache_dir / "http-token").read_text().strip()


def where(daemon: DaemonProcess, transport: str) -> dict[str, Any]:
    """The keyword arguments that point any client at ``daemon`` over ``transport``."""
    if transport == "socket":
        return {"socket_path": daemon.socket_path}
    return {"url": http_url(daemon), "token": token(daemon)}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_daemon_client(served: DaemonProcess, transport: str) -> None:
    with DaemonClient(**where(served, transport), autostart=False) as client:
        assert client.ping().protocol_version == 1
        assert "uv" in client.status().pools
        assert client.daemon_info().pid == served.process.pid


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_settings_client(served: DaemonProcess, transport: str) -> None:
    with SettingsClient(**where(served, transport), autostart=False) as client:
        client.set("uv.default_packages", ["six"])
        assert client.get("uv.default_packages") == ["six"]
        assert "uv" in client.get_all()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_blob_client(served: DaemonProcess, transport: str) -> None:
    data = os.urandom(3 * 2**20)  # several websocket frames' worth
    with BlobClient(**where(served, transport), autostart=False) as client:
        digest = client.put(data)
    with BlobClient(**where(served, transport), autostart=False) as client:
        assert client.get(digest) == data


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_session_runs_cells_and_sees_a_socket_sessions_edits_live(
    served: DaemonProcess, transport: str
) -> None:
    notebook_id = f"matrix-{transport}-{uuid.uuid4().hex[:8]}"
    with (
        Session(notebook_id, **where(served, transport)) as remote,
        Session(notebook_id, served.socket_path) as local,
    ):
        result = remote.run("1 + 1", timeout=120)
        assert result.success and result.display_data[0].data["text/plain"] == "2"
        cell = local.create_cell("x = 'typed on the socket'")
        wait_until(lambda: remote.document.get_cell(cell).source.startswith("x ="), 10)
        local.append_source(cell, "!")
        wait_until(lambda: remote.document.get_cell(cell).source.endswith("!"), 10)
        remote.set_source(cell, "from the other side")
        wait_until(lambda: local.document.get_cell(cell).source == "from the other side", 10)


def test_a_wrong_token_is_one_line_that_says_what_to_do(served: DaemonProcess) -> None:
    url = http_url(served)
    with (
        pytest.raises(RuntimedError) as caught,
        DaemonClient(url=url, token="0" * 64, autostart=False) as client,
    ):
        client.ping()
    assert caught.value.code == "unauthorized"
    assert caught.value.message == (
        f"the daemon at {url} refused the token (401); "
        "pass token= (runt --token-file) or set RUNTIMED_TOKEN"
    )


def test_a_yjs_client_joins_a_room(served: DaemonProcess) -> None:
    notebook_id = f"yjs-{uuid.uuid4().hex[:8]}"
    url, secret = http_url(served), token(served)
    with Session(notebook_id, served.socket_path) as session:
        first = session.create_cell("seen by Yjs")
        typed = asyncio.run(yjs_peer(url, secret, notebook_id, first))
        assert typed == "seen by Yjs"
        wait_until(lambda: len(session.document.get_cells()) == 2, 10)
        assert session.document.get_cells()[1].source == "typed in Yjs"


async def yjs_peer(url: str, secret: str, notebook_id: str, cell_id: str) -> str:
    """A pycrdt Provider (y-websocket sync) on the room: reads a cell, adds one."""
    from websockets.asyncio.client import connect

    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from sync import WsChannel  # the bench's pycrdt Channel over a websockets connection

    ws_url = url.replace("http://", "ws://") + f"/ws/notebooks/{notebook_id}"
    headers = {"Authorization": f"Bearer {secret}"}
    nb = NotebookDoc(Doc())
    async with (
        connect(ws_url, additional_headers=headers, compression=None) as ws,
        Provider(nb.doc, WsChannel(ws, notebook_id)),
    ):
        async with asyncio.timeout(10):
            while not any(c.id == cell_id for c in nb.get_cells()):
                await asyncio.sleep(0.01)
        source = nb.get_cell(cell_id).source
        nb.insert_cell(None, "typed in Yjs", "code")
        await asyncio.sleep(0.2)  # the provider ships the update; the peer polls for it
    return source


def test_runt_url_and_token_file(served: DaemonProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(token(served))
    env = {**os.environ, "RUNTIMED_SOCKET_PATH": str(tmp_path / "nobody.sock")}
    argv = [sys.executable, "-m", "runtimed.cli.runt_cli"]
    remote = ["--url", http_url(served), "--token-file", str(token_file)]
    out = subprocess.run(
        [*argv, *remote, "pool", "ping"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pong: daemon")
    token_file.write_text("f" * 64)
    out = subprocess.run(
        [*argv, *remote, "rooms"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 1
    assert out.stderr.strip().endswith(
        "refused the token (401); pass token= (runt --token-file) or set RUNTIMED_TOKEN"
    )
