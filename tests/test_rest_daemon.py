"""The REST API end to end: a real daemon, its HTTP server and token, real kernels. A
runtime started, run and stopped over REST; a notebook file opened, run and saved; the
history and the OpenAPI document read back."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from helpers import DaemonProcess, notebook_sources, write_notebook
from runtimed.documents.blob_refs import output_refs

pytestmark = pytest.mark.daemon


class Rest:
    """A REST client of one daemon, with its token."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(
        self, method: str, path: str, body: Any = None, expect: int = 200, **query: str
    ) -> Any:
        async with self.session.request(
            method, self.url + path, json=body, params=query or None
        ) as response:
            text = await response.text()
            assert response.status == expect, text
            return json.loads(text)


def http_address(daemon: DaemonProcess, timeout: float = 30.0) -> str:
    """The daemon's HTTP URL (its server starts just after the socket answers)."""
    deadline = time.monotonic() + timeout
    while True:
        with daemon.client() as client:
            url = client.daemon_info().http_url
        if url is not None:
            return url
        assert time.monotonic() < deadline, "the daemon's HTTP server never started"
        time.sleep(0.05)


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonProcess]) -> DaemonProcess:
    """Two pool envs: a runtime's kernel and a notebook's."""
    return daemon_factory("--uv-pool-size", "2")


@pytest.fixture
async def rest(daemon: DaemonProcess) -> AsyncIterator[Rest]:
    url = http_address(daemon)
    token = (daemon.cache_dir / "http-token").read_text().strip()
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url + "/api/runtimes") as no:
        assert no.status == 401
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield Rest(session, url)


async def test_a_runtime_and_a_notebook_over_rest(
    rest: Rest, daemon: DaemonProcess, tmp_path: Path
) -> None:
    daemon.wait_pool("uv", 2)
    body = {"kernel": "python3", "cwd": str(tmp_path)}
    runtime = (await rest.call("POST", "/api/runtimes", body, 201))["runtime"]
    runtime_id = runtime["runtime_id"]
    assert runtime["status"] == "idle" and runtime["language"] == "python"

    ran = await rest.call(
        "POST", f"/api/runtimes/{runtime_id}/execute", {"code": "6 * 7"}, wait="60"
    )
    assert ran["execution"]["status"] == "done"
    (result,) = [o for o in ran["outputs"] if o["output_type"] == "execute_result"]
    assert result["data"]["text/plain"] == "42"
    executions = await rest.call("GET", "/api/executions", runtime=runtime_id)
    (entry,) = executions["executions"]
    assert entry["source"] == "6 * 7" and entry["execution_id"] == ran["execution"]["execution_id"]
    full = await rest.call("GET", f"/api/executions/{entry['id']}")
    assert full["execution"]["outputs"] == ran["outputs"]
    # A large output is a blob reference, fetched from the same server with the token.
    code = {"code": "print('x' * 5000)"}
    ran = await rest.call("POST", f"/api/runtimes/{runtime_id}/execute", code, wait="60")
    (ref,) = output_refs(ran["outputs"][0])
    async with rest.session.get(f"{rest.url}/blob/{ref['blob']}") as blob:
        assert blob.status == 200 and await blob.text() == "x" * 5000 + "\n"

    path = tmp_path / "nb.ipynb"
    write_notebook(path, "import os; print(os.getcwd())")
    opened = await rest.call("POST", "/api/notebooks", {"path": str(path)})
    notebook = "/api/notebooks/" + quote(opened["notebook_id"], safe="")
    (cell,) = (await rest.call("GET", notebook))["cells"]
    ran = await rest.call("POST", f"{notebook}/cells/{cell['id']}/execute", wait="60")
    assert ran["outputs"][0]["text"] == f"{tmp_path}\n"  # a notebook's kernel runs beside it
    (cell,) = (await rest.call("GET", notebook))["cells"]
    assert cell["last_execution_id"] == ran["execution"]["execution_id"]
    assert (await rest.call("POST", f"{notebook}/save"))["path"] == str(path)
    assert notebook_sources(path) == ["import os; print(os.getcwd())"]

    killed = await rest.call("DELETE", f"/api/runtimes/{runtime_id}")
    assert killed["runtime"]["status"] == "shutdown"
    listed = await rest.call("GET", "/api/runtimes")
    assert runtime_id not in [r["runtime_id"] for r in listed["runtimes"]]
    error = await rest.call("GET", f"/api/runtimes/{runtime_id}", expect=404)
    assert error["error"]["code"] == "not_found"


async def test_bad_requests_get_json_errors(rest: Rest) -> None:
    async with rest.session.post(rest.url + "/api/runtimes", data=b"{oops") as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_json"
    error = await rest.call("POST", "/api/notebooks", {"path": "relative.ipynb"}, 400)
    assert error["error"]["code"] == "invalid_path"
    document = await rest.call("GET", "/api/openapi.json")
    assert "/api/runtimes/{id}/execute" in document["paths"]
    status = await rest.call("GET", "/api/status")
    assert status["version"]
