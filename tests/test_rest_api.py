"""The REST API's handlers in process: aiohttp's test server over RestApi's routes, the
notebook service's parts built directly (rooms, room kernels on kernel_doubles' FakeBackend
through a KernelProvider double, a real history.sqlite); no daemon, no token (auth is the
HTTP server's middleware, tested with the daemon)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from kernel_provider_double import FakeKernelProvider
from runtimed.daemon.blobs import BlobStore
from runtimed.daemon.channels.notebook import NotebookChannel
from runtimed.daemon.channels.room_requests import RoomRequests
from runtimed.daemon.execution.room_kernel import RoomKernelDeps
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.history import HistoryLog, HistoryStore
from runtimed.daemon.http.rest_api import OPENAPI_PATH, RestApi
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.daemon.runtimes import RuntimeRegistry
from runtimed.daemon.runtimes.runtime_history import RuntimeHistory

BODY_LIMIT = 64 * 1024


@dataclass
class Parts:
    """What RestApi uses of the NotebookService."""

    runtimes: RuntimeRegistry
    rooms: RoomRegistry
    room_kernels: RoomKernels
    history: HistoryLog
    channel: NotebookChannel


@dataclass
class KeepAlive:
    """The rooms' keep_alive_secs (tests of eviction make it short)."""

    secs: float = 60.0


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    parts: Parts
    rest: RestApi
    keep_alive: KeepAlive

    async def call(
        self, method: str, path: str, body: Any = None, expect: int = 200, **params: str
    ) -> Any:
        """A request (``params`` its query); its status must be ``expect``; the decoded
        JSON answer."""
        url = URL(path, encoded=True).with_query(params) if params else URL(path, encoded=True)
        data = json.dumps(body) if body is not None else None
        response = await self.client.request(method, url, data=data)
        text = await response.text()
        assert response.status == expect, text
        assert response.content_type == "application/json"
        return json.loads(text)

    async def error(self, method: str, path: str, expect: int, body: Any = None, **q: str) -> str:
        """The error code of a request that must fail with ``expect``."""
        answer = await self.call(method, path, body, expect, **q)
        assert set(answer) == {"error"} and answer["error"]["message"]
        code: str = answer["error"]["code"]
        return code


def notebook_url(notebook_id: str, *rest: str) -> str:
    return "/".join(["/api/notebooks", quote(notebook_id, safe=""), *rest])


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    history = HistoryLog(HistoryStore(tmp_path / "history.sqlite"))
    history.start()
    room_kernels = RoomKernels(
        RoomKernelDeps(
            provider=FakeKernelProvider(tmp_path),
            untitled_dir=tmp_path / "untitled",
            execution_logs=history,
            runtime_observer=RuntimeHistory(history),
        )
    )
    keep_alive = KeepAlive()
    rooms = RoomRegistry(tmp_path / "docs", lambda: keep_alive.secs, room_kernels)
    channel = NotebookChannel(rooms, RoomRequests(room_kernels, blob_fetch=None))
    parts = Parts(
        RuntimeRegistry(rooms, room_kernels, history), rooms, room_kernels, history, channel
    )

    async def notebooks() -> Parts:
        return parts

    blobs = BlobStore(tmp_path / "blobs")
    rest = RestApi(notebooks, blobs)
    app = web.Application(client_max_size=BODY_LIMIT)
    app.add_routes(rest.routes())
    async with TestClient(TestServer(app)) as client:
        yield Api(client, parts, rest, keep_alive)
    await rooms.close_all()
    await asyncio.to_thread(history.close)


# --- runtimes --------------------------------------------------------------------------


async def test_a_runtime_started_run_listed_and_stopped(api: Api) -> None:
    started = (await api.call("POST", "/api/runtimes", {"kernel": "python3"}, 201))["runtime"]
    runtime_id = started["runtime_id"]
    assert started["status"] == "idle" and started["notebook_id"] == f"runtime-{runtime_id}"
    listed = await api.call("GET", "/api/runtimes")
    assert [r["runtime_id"] for r in listed["runtimes"]] == [runtime_id]
    one = await api.call("GET", f"/api/runtimes/{runtime_id[:4]}")  # a prefix will do
    assert one["runtime"]["runtime_id"] == runtime_id

    ran = await api.call("POST", f"/api/runtimes/{runtime_id}/execute", {"code": "1+1"}, wait="5")
    assert ran["execution"]["status"] == "done" and ran["execution"]["success"] is True
    assert ran["notebook_id"] == started["notebook_id"]
    assert [o.get("text") for o in ran["outputs"] if o["output_type"] == "stream"] == ["ran 1+1\n"]
    room = api.parts.rooms.rooms[started["notebook_id"]]  # the code is a cell of its room
    assert room.nb.get_source(ran["cell_id"]) == "1+1"

    assert (await api.call("POST", f"/api/runtimes/{runtime_id}/interrupt"))["runtime"]
    restarted = await api.call("POST", f"/api/runtimes/{runtime_id}/restart")
    assert restarted["runtime"]["status"] == "idle"
    killed = await api.call("DELETE", f"/api/runtimes/{runtime_id}")
    assert killed["runtime"]["status"] == "shutdown"
    assert await api.error("GET", f"/api/runtimes/{runtime_id}", 404) == "not_found"
    assert await api.call("GET", "/api/runtimes") == {"type": "runtimes", "runtimes": []}


async def test_execute_without_wait_answers_202_and_the_history_has_it(api: Api) -> None:
    runtime_id = (await api.call("POST", "/api/runtimes", {}, 201))["runtime"]["runtime_id"]
    queued = await api.call("POST", f"/api/runtimes/{runtime_id}/execute", {"code": "x"}, 202)
    execution_id = queued["execution"]["execution_id"]
    assert queued["execution"]["status"] in ("queued", "running") and queued["outputs"] is None

    async def recorded() -> bool:
        answer = await api.client.get(f"/api/executions/{execution_id}")
        return answer.status == 200 and (await answer.json())["execution"]["status"] == "done"

    await until(recorded)
    entry = (await api.call("GET", f"/api/executions/{execution_id}"))["execution"]
    assert (entry["source"], entry["runtime_id"]) == ("x", runtime_id)
    assert any(o.get("text") == "ran x\n" for o in entry["outputs"])
    # A wait that ends first still answers 202; the execution goes on.
    blocked = await api.call(
        "POST", f"/api/runtimes/{runtime_id}/execute", {"code": "block"}, 202, wait="0.05"
    )
    assert blocked["execution"]["status"] == "running"


async def test_executions_are_listed_by_notebook_runtime_and_status(api: Api) -> None:
    runtime_id = (await api.call("POST", "/api/runtimes", {}, 201))["runtime"]["runtime_id"]
    for code in ("a", "raise ValueError: no", "b"):
        await api.call("POST", f"/api/runtimes/{runtime_id}/execute", {"code": code}, wait="5")
    everything = (await api.call("GET", "/api/executions"))["executions"]
    assert [e["source"] for e in everything] == ["b", "raise ValueError: no", "a"]
    failed = await api.call("GET", "/api/executions", status="error", runtime=runtime_id)
    assert [e["source"] for e in failed["executions"]] == ["raise ValueError: no"]
    mine = await api.call("GET", "/api/executions", notebook=f"runtime-{runtime_id}", limit="1")
    assert [e["source"] for e in mine["executions"]] == ["b"]
    assert (await api.call("GET", "/api/executions", notebook="other"))["executions"] == []
    assert await api.error("GET", "/api/executions", 400, limit="0") == "invalid_request"
    assert await api.error("GET", "/api/executions", 400, limit="x") == "invalid_request"
    assert await api.error("GET", "/api/executions", 400, status="weird") == "invalid_request"
    assert await api.error("GET", "/api/executions/nope", 404) == "not_found"


async def test_bad_runtime_requests_are_refused(api: Api, tmp_path: Path) -> None:
    assert await api.error("POST", "/api/runtimes", 400, {"kernel": "no-such"}) != "internal"
    code = await api.error("POST", "/api/runtimes", 400, {"cwd": "relative"})
    assert code == "invalid_cwd"
    assert await api.error("POST", "/api/runtimes", 400, {"kernel": 3}) == "invalid_request"
    assert await api.error("POST", "/api/runtimes", 400, {"colour": "red"}) == "invalid_request"
    assert api.parts.rooms.rooms == {}  # nothing started
    for method, path in [
        ("GET", "/api/runtimes/nope"),
        ("DELETE", "/api/runtimes/nope"),
        ("POST", "/api/runtimes/nope/interrupt"),
        ("POST", "/api/runtimes/nope/restart"),
    ]:
        assert await api.error(method, path, 404) == "not_found"
    assert await api.error("POST", "/api/runtimes/nope/execute", 404, {"code": "1"}) == "not_found"
    assert await api.error("POST", "/api/runtimes/x/execute", 400, {}) == "invalid_request"
    for wait in ("abc", "0", "-1", "nan", "1e9"):
        code = await api.error("POST", "/api/runtimes/x/execute", 400, {"code": "1"}, wait=wait)
        assert code == "invalid_request"


async def test_malformed_and_oversize_bodies(api: Api) -> None:
    response = await api.client.post("/api/runtimes", data=b"{not json")
    assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_json"
    response = await api.client.post("/api/notebooks", data=b"x" * (BODY_LIMIT + 1))
    assert response.status == 413 and (await response.json())["error"]["code"] == "too_large"
    assert api.parts.rooms.rooms == {}


# --- notebooks -------------------------------------------------------------------------


async def test_a_notebook_opened_run_read_and_saved(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    opened = await api.call("POST", "/api/notebooks", {"path": str(path)})
    notebook_id = opened["notebook_id"]
    assert notebook_id == str(path.resolve()) and opened["path"] == notebook_id
    assert (await api.call("GET", "/api/notebooks"))["rooms"][0]["notebook_id"] == notebook_id
    room = api.parts.rooms.rooms[notebook_id]
    code = room.nb.insert_cell(None, "y")  # as a peer would have written them
    text = room.nb.insert_cell(None, "# notes", cell_type="markdown")

    ran = await api.call("POST", notebook_url(notebook_id, "cells", code, "execute"), wait="5")
    assert ran["execution"]["status"] == "done" and ran["cell_id"] == code
    view = await api.call("GET", notebook_url(notebook_id))
    assert (view["notebook_id"], view["path"]) == (notebook_id, notebook_id)
    cells = {cell["id"]: cell for cell in view["cells"]}
    assert cells[code]["last_execution_id"] == ran["execution"]["execution_id"]
    assert cells[code]["last_execution_status"] == "done" and cells[code]["execution_count"] == 1
    assert cells[text]["last_execution_id"] is None and cells[text]["source"] == "# notes"
    again = await api.call("POST", notebook_url(notebook_id, "cells", code, "execute"), wait="5")
    view = await api.call("GET", notebook_url(notebook_id))
    last = {cell["id"]: cell["last_execution_id"] for cell in view["cells"]}
    assert last[code] == again["execution"]["execution_id"]

    assert await api.call("POST", notebook_url(notebook_id, "save")) == {
        "type": "saved",
        "path": notebook_id,
    }
    saved = json.loads(path.read_text())
    # A new file starts with one empty cell, as a new notebook does in JupyterLab.
    assert ["".join(c["source"]) for c in saved["cells"]] == ["", "y", "# notes"]
    copy = tmp_path / "copy.ipynb"
    await api.call("POST", notebook_url(notebook_id, "save"), {"path": str(copy)})
    assert copy.exists()

    url = notebook_url(notebook_id, "cells", text, "execute")
    assert await api.error("POST", url, 409) == "not_code"
    url = notebook_url(notebook_id, "cells", "no-such-cell", "execute")
    assert await api.error("POST", url, 404) == "not_found"
    path.write_text(path.read_text() + "\n")  # changed on disk behind the room's back
    assert await api.error("POST", notebook_url(notebook_id, "save"), 409) == "file_changed"
    await api.call("POST", notebook_url(notebook_id, "save"), {"force": True})


async def test_an_untitled_notebook_and_bad_notebook_requests(api: Api, tmp_path: Path) -> None:
    untitled = await api.call("POST", "/api/notebooks", {})
    assert untitled["notebook_id"].startswith("untitled-") and untitled["path"] is None
    assert untitled["cells"] == 1  # one empty code cell to type in
    missing_dir = await api.error("POST", "/api/notebooks", 400, {"path": f"{tmp_path}/no/a.ipynb"})
    assert missing_dir == "invalid_path"
    url = notebook_url(untitled["notebook_id"], "save")
    assert await api.error("POST", url, 400) == "no_path"
    assert await api.error("POST", url, 400, {"path": "relative.ipynb"}) == "invalid_path"
    assert await api.error("POST", url, 400, {"path": "/a\x00b"}) == "invalid_notebook_id"
    assert await api.error("POST", url, 400, {"path": "/dev/null"}) == "not_a_file"

    relative = await api.error("POST", "/api/notebooks", 400, {"path": "nb.ipynb"})
    assert relative == "invalid_path"
    nul = await api.error("POST", "/api/notebooks", 400, {"path": f"{tmp_path}/\x00.ipynb"})
    assert nul == "invalid_notebook_id"
    long = await api.error("POST", "/api/notebooks", 400, {"path": "/" + "a" * 2000})
    assert long == "invalid_notebook_id"
    not_a_notebook = tmp_path / "bad.ipynb"
    not_a_notebook.write_text("{")
    code = await api.error("POST", "/api/notebooks", 400, {"path": str(not_a_notebook)})
    assert code == "invalid_notebook"

    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    for special in (tmp_path, "/dev/zero", fifo):  # never read: they never end
        code = await api.error("POST", "/api/notebooks", 400, {"path": str(special)})
        assert code == "not_a_file"

    assert await api.error("GET", notebook_url("/not/open.ipynb"), 404) == "not_found"
    assert await api.error("GET", "/api/notebooks/%00", 400) == "invalid_notebook_id"
    url = notebook_url("/not/open.ipynb", "cells", "c", "execute")
    assert await api.error("POST", url, 404) == "not_found"
    assert len(api.parts.rooms.rooms) == 1  # only the untitled one


async def test_a_notebook_nobody_joins_is_evicted_after_keep_alive(
    api: Api, tmp_path: Path
) -> None:
    api.keep_alive.secs = 0.2
    opened = await api.call("POST", "/api/notebooks", {"path": str(tmp_path / "a.ipynb")})
    notebook_id = opened["notebook_id"]
    rooms = api.parts.rooms
    assert notebook_id in rooms.rooms

    async def evicted() -> bool:
        return notebook_id not in rooms.rooms

    await until(evicted)
    assert await api.error("GET", notebook_url(notebook_id), 404) == "not_found"


async def test_a_room_stays_open_while_its_rest_execution_runs(api: Api, tmp_path: Path) -> None:
    api.keep_alive.secs = 0.2
    opened = await api.call("POST", "/api/notebooks", {"path": str(tmp_path / "b.ipynb")})
    notebook_id = opened["notebook_id"]
    rooms = api.parts.rooms
    cell = rooms.rooms[notebook_id].nb.insert_cell(None, "block")
    url = notebook_url(notebook_id, "cells", cell, "execute")
    running = await api.call("POST", url, None, 202, wait="0.05")
    execution_id = running["execution"]["execution_id"]
    assert api.rest.holds.held(notebook_id) == {execution_id}
    assert notebook_id in rooms.pinned  # no eviction clock runs under the cell

    room_kernel = api.parts.room_kernels.get(notebook_id)
    assert room_kernel is not None
    await room_kernel.interrupt()  # the blocked cell ends (KeyboardInterrupt)

    async def released_then_evicted() -> bool:
        return notebook_id not in rooms.pinned and notebook_id not in rooms.rooms

    await until(released_then_evicted)
    assert api.rest.holds.held(notebook_id) == set()
    entry = (await api.call("GET", f"/api/executions/{execution_id}"))["execution"]
    assert entry["status"] == "error" and entry["error"].startswith("KeyboardInterrupt")


# --- the rest --------------------------------------------------------------------------


async def test_blobs_are_served_behind_the_same_routes(api: Api) -> None:
    assert api.rest.blobs is not None
    digest = api.rest.blobs.put(b"<svg/>", "image/svg+xml")
    response = await api.client.get(f"/blob/{digest}")
    assert response.status == 200 and await response.read() == b"<svg/>"
    assert response.content_type == "image/svg+xml"
    assert response.headers["Content-Security-Policy"].startswith("sandbox")
    # On the page's origin a kernel's JavaScript is text: nothing here is a script to run.
    module = api.rest.blobs.put(b"export default {}", "text/javascript")
    response = await api.client.get(f"/blob/{module}")
    assert response.content_type == "text/plain" and response.headers["X-Content-Type-Options"]
    assert await response.read() == b"export default {}"
    assert await api.error("GET", "/blob/" + "0" * 64, 404) == "not_found"
    assert await api.error("GET", "/blob/..%2F..%2Fetc", 400) == "invalid_hash"


async def test_the_openapi_document_lists_every_route(api: Api) -> None:
    from openapi_spec_validator import validate

    document = await api.call("GET", OPENAPI_PATH)
    validate(document)
    assert document["openapi"].startswith("3.1")
    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    routed = {(route.method, route.path) for route in api.rest.routes()}
    daemon_own = {("GET", "/api/health"), ("GET", "/api/status")}
    # 4+2+1+2: the page's actions, widgets, input, trust
    assert listed == routed | daemon_own and len(routed) == 25
    assert document["paths"]["/api/health"]["get"]["security"] == []  # no token
    execute = document["paths"]["/api/runtimes/{id}/execute"]["post"]
    assert {"200", "202", "400", "401", "404", "409", "413"} <= set(execute["responses"])
    assert "201" in document["paths"]["/api/runtimes"]["post"]["responses"]
    schemas = document["components"]["schemas"]
    assert {"RuntimeInfo", "ExecutionEntry", "ExecutionResult", "ErrorReplyBody"} <= set(schemas)


BAD_BODIES = [
    b"[]",
    b"null",
    b'"text"',
    b"\xff\xfe",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"code": "\\ud800"}',
    b'{"code": 1e999}',
    b'{"path": ["/tmp"]}',
    b'{"kernel": {"a": 1}}',
    b'{"force": "yes"}',
]
NASTY_IDS = ["%2e%2e%2f%2e%2e", "a" * 2000, "%00", "%ff%fe", "%E2%98%83", "x%0Ay", "%25"]


async def test_nothing_a_client_sends_gets_a_500(api: Api) -> None:
    """Every bad body and every odd id gets a JSON 4xx; nothing starts or opens."""
    posts = [
        "/api/runtimes",
        "/api/notebooks",
        "/api/runtimes/x/execute",
        "/api/notebooks/x/save",
        "/api/notebooks/x/trust",
        "/api/runtimes/x/interrupt",
        "/api/notebooks/x/cells/y/execute",
        "/api/notebooks/x/executions/y/input",
    ]
    for path in posts:
        for body in BAD_BODIES:
            response = await api.client.post(path, data=body)
            assert 400 <= response.status < 500, (path, body[:40], await response.text())
            assert (await response.json())["error"]["code"]
    for ident in NASTY_IDS:
        for method, path in [
            ("GET", f"/api/runtimes/{ident}"),
            ("DELETE", f"/api/runtimes/{ident}"),
            ("POST", f"/api/runtimes/{ident}/restart"),
            ("GET", f"/api/executions/{ident}"),
            ("GET", f"/api/notebooks/{ident}"),
            ("POST", f"/api/notebooks/{ident}/cells/{ident}/execute"),
            ("POST", f"/api/notebooks/{ident}/save"),
            ("GET", f"/api/notebooks/{ident}/trust"),
            ("POST", f"/api/notebooks/{ident}/trust"),
            ("POST", f"/api/notebooks/{ident}/executions/{ident}/input"),
        ]:
            response = await api.client.request(method, URL(path, encoded=True))
            assert response.status in (400, 404), (method, path[:60], await response.text())
            assert (await response.json())["error"]["code"]
        response = await api.client.get("/api/executions", params={"notebook": ident})
        assert response.status in (200, 400)
    assert api.parts.rooms.rooms == {} and api.parts.runtimes.list() == []
