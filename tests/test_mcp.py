"""`runt mcp`: the SDK's own MCP client over stdio against a real daemon and real kernels,
with a `Session` on the same notebook as the people/scripts the agent works with."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import pytest_asyncio
from mcp.client.session import ClientSession
from mcp.types import ImageContent

import runtimed
from helpers import DaemonProcess, wait_until
from mcp_host import Agent, all_text, mcp_env, start_agent
from runtimed.mcp_server import dependencies, editing
from runtimed.mcp_server.outputs import clip, html_to_text, strip_ansi
from runtimed.mcp_server.patterns import Matches

module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def mcp_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    # Every kernel takes a pool env: the tests share two notebooks (and kernels) and
    # the ones that need no kernel run first, while the pool builds.
    d = DaemonProcess(tmp_path_factory.mktemp("mcp") / "cache", ["--uv-pool-size", "2"])
    d.start()
    yield d
    d.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(
    mcp_daemon: DaemonProcess, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Agent]:
    a = await start_agent(mcp_daemon, tmp_path_factory.mktemp("agent"))
    yield a
    await a.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def work(agent: Agent, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A notebook (and kernel) the tests that only add and run cells share."""
    path = str(tmp_path_factory.mktemp("work") / "work.ipynb")
    await agent.ok("create_notebook", path=path)
    return path


@pytest.fixture(scope="module")
def deps_sync() -> dict[str, Any]:
    """Hands the background sync_environment call from the test that starts it to the
    test that checks it."""
    return {}


@pytest.fixture
def human(mcp_daemon: DaemonProcess) -> Iterator[Any]:
    """Make `Session`s (a person or a script) on the daemon the agent uses."""
    opened: list[runtimed.Session] = []

    def make(path: str) -> runtimed.Session:
        s = runtimed.Session.open(path, socket_path=mcp_daemon.socket_path).connect()
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\x00\xff")
    body = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


# --- with a daemon ------------------------------------------------------------------------


@pytest.mark.daemon
@module_loop
async def test_tools_and_schemas(agent: Agent, work: str) -> None:
    # (`work` is created first: its kernel starts in the background while the pool builds)
    assert agent.session is not None
    tools = {t.name: t for t in (await agent.session.list_tools()).tools}
    expected = (
        "list_notebooks open_notebook create_notebook save_notebook get_cell get_all_cells "
        "create_cell set_cell delete_cell move_cell clear_outputs execute_cell run_all_cells "
        "get_results interrupt_kernel restart_kernel kernel_status get_dependencies "
        "add_dependency remove_dependency sync_environment replace_match replace_regex"
    )
    for name in expected.split(" "):
        assert name in tools, name
        assert tools[name].description
    schema = tools["create_cell"].input_schema
    assert schema["properties"]["cell_type"]["enum"] == ["code", "markdown", "raw"]
    assert schema["properties"]["timeout"]["exclusiveMinimum"] == 0
    assert schema["properties"]["timeout"]["maximum"] == 3600
    assert all(p.get("description") for p in schema["properties"].values())
    annotations = tools["get_cell"].annotations
    assert annotations is not None and annotations.read_only_hint


@pytest.mark.daemon
@module_loop
async def test_bad_arguments_are_tool_errors_that_never_reach_the_daemon(
    agent: Agent, mcp_daemon: DaemonProcess, tmp_path: Path
) -> None:
    with mcp_daemon.client() as c:
        rooms = len(c.list_rooms())
    existing = tmp_path / "exists.ipynb"
    existing.write_text("{}")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("get_cell", {}, "cell_id"),  # missing
        ("get_cell", {"cell_id": "x", "colour": "red"}, "no argument(s) 'colour'"),
        ("create_cell", {"cell_type": "python"}, "cell_type"),
        ("execute_cell", {"cell_id": "x", "timeout": -1}, "timeout"),
        ("open_notebook", {"path": str(tmp_path / "missing.ipynb")}, "create_notebook"),
        ("open_notebook", {"path": str(tmp_path / "notes.txt")}, "must end in .ipynb"),
        ("create_notebook", {"path": str(existing)}, "already exists"),
        ("create_notebook", {"dependencies": ["--index-url=http://evil"]}, "not a package spec"),
        ("get_results", {"execution_id": "no such id!"}, "not an execution id"),
    ]
    for tool, args, expected in cases:
        assert expected in await agent.error(tool, **args), (tool, args)
    with mcp_daemon.client() as c:
        assert len(c.list_rooms()) == rooms  # nothing was opened or created

    await agent.ok("create_notebook", path=str(tmp_path / "bad.ipynb"), start_kernel=False)
    _, info, _ = await agent.ok("create_cell", source="a = 1\na = 2\n")
    cid = info["cell_id"]
    cases = [
        ("execute_cell", {"cell_id": "cell-nope"}, "get_all_cells() lists the cell ids"),
        ("replace_match", {"cell_id": cid, "match": "a = ", "content": "b = "}, "matches 2 times"),
        ("replace_match", {"cell_id": cid, "match": "zzz", "content": ""}, "was not found"),
        ("replace_regex", {"cell_id": cid, "pattern": "(", "content": ""}, "not a valid"),
        ("replace_regex", {"cell_id": cid, "pattern": "^a", "content": ""}, "matches 2 times"),
        ("create_cell", {"index": 99}, "past the end"),
        ("create_cell", {"source": "# x", "cell_type": "markdown", "run": True}, "code cell"),
        ("move_cell", {"cell_id": cid}, "exactly one of index or after"),
        ("get_cell", {"cell_id": cid, "output_index": 3}, "has 0 output(s)"),
        ("save_notebook", {"path": str(tmp_path / "no-dir" / "x.ipynb")}, "not an existing"),
        ("add_dependency", {"package": "-e ."}, "not a package spec"),
        ("get_results", {"execution_id": "exec-0000000000000000"}, "not known"),
        ("get_cell", {"cell_id": cid, "notebook": "other.ipynb"}, "is not open here"),
    ]
    for tool, args, expected in cases:
        assert expected in await agent.error(tool, **args), (tool, args)
    text, _, _ = await agent.ok("get_cell", cell_id=cid)
    assert "a = 1\na = 2" in text  # every refused edit changed nothing


@pytest.mark.daemon
@module_loop
async def test_dependencies_then_sync_environment_in_the_background(
    agent: Agent, deps_sync: dict[str, Any], tmp_path: Path
) -> None:
    path = str(tmp_path / "deps.ipynb")
    await agent.ok("create_notebook", path=path, start_kernel=False)
    text, info, _ = await agent.ok("add_dependency", package=["psutil", "traitlets"])
    assert info["dependencies"] == ["psutil", "traitlets"] and "sync_environment" in text
    _, info, _ = await agent.ok("add_dependency", package="psutil>=5")
    assert info["dependencies"] == ["traitlets", "psutil>=5"]
    _, info, _ = await agent.ok("remove_dependency", package="traitlets")
    assert info["dependencies"] == ["psutil>=5"]
    _, info, _ = await agent.ok("get_dependencies")
    assert info["dependencies"] == ["psutil>=5"]
    # The env build takes a while: it runs while the next tests use other notebooks (the
    # explicit notebook= keeps it on this one), and the last test checks the result.
    # psutil comes with ipykernel: the env builds from the uv cache, no download needed.
    deps_sync["path"] = path
    deps_sync["task"] = asyncio.create_task(
        agent.ok("sync_environment", timeout=300, notebook=path)
    )


@pytest.mark.daemon
@module_loop
async def test_http_transport_needs_the_token(mcp_daemon: DaemonProcess, tmp_path: Path) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **mcp_env(tmp_path, mcp_daemon), "RUNTIMED_MCP_TOKEN": "s3cret"}
    env.pop("RUNTIMED_SOCKET_PATH")  # --socket instead
    log = (tmp_path / "http.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtimed.cli.runt_cli", "mcp", "--http", "--port", str(port),
         "--socket", str(mcp_daemon.socket_path)],
        env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"

    def status(token: str | None) -> int:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(url, b"{}", headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        wait_until(lambda: status(None) == 401, 60, what="runt mcp --http to answer")
        assert status("wrong") == 401
        headers = {"Authorization": "Bearer s3cret"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            streamable_http_client(url, http_client=http) as (r, w),
            ClientSession(r, w) as client,
        ):
            await client.initialize()
            result = await client.call_tool("list_notebooks", {})
            assert not result.is_error and "open rooms" in all_text(result)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    assert "Authorization: Bearer $RUNTIMED_MCP_TOKEN" in (tmp_path / "http.log").read_text()


@pytest.mark.daemon
@module_loop
async def test_agent_and_session_share_a_notebook(agent: Agent, human: Any, tmp_path: Path) -> None:
    path = tmp_path / "shared.ipynb"
    text, info, _ = await agent.ok("create_notebook", path=str(path))
    assert path.exists() and info["path"] == str(path)
    person = human(str(path))

    # The first run waits for a pool env (built from PyPI on a cold uv cache).
    text, info, _ = await agent.ok("create_cell", source="y = 6 * 7\ny", run=True, timeout=300)
    assert info["status"] == "done" and "Out[1]: 42" in text
    cid = info["cell_id"]
    # The person sees the agent's cell and its output, as they happen.
    wait_until(lambda: [c.id for c in person.get_cells()] == [cid], 10, what="agent's cell")
    wait_until(lambda: person.get_outputs(cid)[0]["data"]["text/plain"] == "42", 10, what="output")

    # ... and the agent sees the person's cell, and runs it in the same kernel.
    theirs = person.create_cell("print(y + 1)")
    text, _, _ = await agent.ok("get_all_cells")
    assert theirs in text and "print(y + 1)" in text and "[1] code" in text
    text, info, _ = await agent.ok("execute_cell", cell_id=theirs)
    assert "43" in text and info["success"] is True
    wait_until(lambda: "43" in person.get_outputs(theirs)[0]["text"], 10, what="person's output")

    # Edits: replace_match and set_cell land in the person's replica.
    text, _, _ = await agent.ok("replace_match", cell_id=cid, match="6 * 7", content="6 * 8")
    assert "-y = 6 * 7" in text and "+y = 6 * 8" in text
    wait_until(lambda: person.get_cell(cid).source == "y = 6 * 8\ny", 10, what="edited source")
    await agent.ok("replace_regex", cell_id=theirs, pattern=r"\Z", content="\nprint('end')")
    wait_until(lambda: person.get_cell(theirs).source.endswith("print('end')"), 10)
    await agent.ok("set_cell", cell_id=cid, source="y = 1\ny", run=True)
    await agent.ok("move_cell", cell_id=cid, after=theirs)
    wait_until(lambda: [c.id for c in person.get_cells()] == [theirs, cid], 10, what="move")

    _, info, _ = await agent.ok("create_cell", source="# Notes", cell_type="markdown", index=0)
    text, _, _ = await agent.ok("get_cell", cell_id=cid)
    assert "y = 1" in text and "Out[" in text

    text, _, _ = await agent.ok("save_notebook")
    saved = nbformat.read(path, as_version=4)
    their_source = person.get_cell(theirs).source
    assert [c.source for c in saved.cells] == ["# Notes", their_source, "y = 1\ny"]
    await agent.ok("delete_cell", cell_id=info["cell_id"])
    wait_until(lambda: len(person.get_cells()) == 2, 10, what="delete")
    text, _, _ = await agent.ok("clear_outputs")
    wait_until(lambda: not person.get_outputs(cid), 10, what="cleared outputs")

    _, data, _ = await agent.ok("list_notebooks")
    room = next(r for r in data["rooms"] if r["path"] == str(path))
    assert room["peers"] >= 2 and room["current"] and room["open_here"]
    assert any(r["path"] == str(path) for r in data["recent"])


@pytest.mark.daemon
@module_loop
async def test_run_all_cells_and_stop_on_error(agent: Agent, work: str) -> None:
    # First on the shared notebook: its only cells are these three.
    await agent.ok("open_notebook", path=work)
    for source in ("a = 1", "raise RuntimeError('boom')", "print('after', a)"):
        await agent.ok("create_cell", source=source)
    text, info, _ = await agent.ok("run_all_cells", timeout=300)  # the first run of `work`
    assert [r["status"] for r in info["executions"]] == ["done", "error", "cancelled"]
    assert "RuntimeError: boom" in text and "1 failed" in text
    text, info, _ = await agent.ok("run_all_cells", stop_on_error=False, timeout=60)
    assert [r["status"] for r in info["executions"]] == ["done", "error", "done"]
    assert "after 1" in text


@pytest.mark.daemon
@module_loop
async def test_long_cell_gives_an_execution_id_that_get_results_finishes(
    agent: Agent, work: str
) -> None:
    await agent.ok("open_notebook", path=work)
    code = "import time\nprint('started', flush=True)\ntime.sleep(1.5)\nprint('finished')"
    text, info, _ = await agent.ok("create_cell", source=code, run=True, timeout=0.2)
    assert not info["finished"] and info["status"] in ("queued", "running")
    eid = info["execution_id"]
    assert f'get_results(execution_id="{eid}")' in text
    text, info, _ = await agent.ok("get_results", execution_id=eid, timeout=60)
    assert info["finished"] and info["status"] == "done"
    assert "started" in text and "finished" in text
    # Asking again answers at once from the finished record.
    text, info, _ = await agent.ok("get_results", execution_id=eid, timeout=0.001)
    assert info["status"] == "done" and "finished" in text


@pytest.mark.daemon
@module_loop
async def test_image_output_is_image_content(agent: Agent, work: str) -> None:
    await agent.ok("open_notebook", path=work)
    png = tiny_png()
    code = (
        "from IPython.display import Image, display\n"
        f"display(Image(data=bytes.fromhex('{png.hex()}')))"
    )
    _, info, result = await agent.ok("create_cell", source=code, run=True)
    images = [c for c in result.content if isinstance(c, ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data) == png
    _, _, again = await agent.ok("get_cell", cell_id=info["cell_id"])
    assert any(isinstance(c, ImageContent) for c in again.content)
    code = (
        "from IPython.display import HTML, JSON, display\n"
        "display(HTML('<table><tr><th>name</th></tr><tr><td>' + 'x' * 2000 + '</td></tr>'))\n"
        "display(JSON({'rows': 3}))"
    )
    text, _, _ = await agent.ok("create_cell", source=code, run=True)
    assert "[HTML rendered as text]\nname\nxxxx" in text and "<td>" not in text
    assert '[application/json]\n{"rows": 3}' in text and "JSON object>" not in text


@pytest.mark.daemon
@module_loop
async def test_errors_long_outputs_and_paging(agent: Agent, work: str) -> None:
    await agent.ok("open_notebook", path=work)
    text, info, _ = await agent.ok("create_cell", source="1 / 0", run=True)
    assert info["status"] == "error" and "ZeroDivisionError: division by zero" in text
    assert "\x1b[" not in text and "1 / 0" in text  # the traceback, without colours
    code = (
        # ~430 KB: past 256 KiB the stream's completed lines go to the blob store
        "import sys\nfor i in range(40000): print(f'line {i}')\n"
        "print('\\x1b[31mred\\x1b[0m', file=sys.stderr)"
    )
    text, info, _ = await agent.ok("create_cell", source=code, run=True)
    assert "line 0\n" in text and "line 39999" in text and "omitted; read them with" in text
    assert "[stderr]\nred" in text and "\x1b" not in text
    cid = info["cell_id"]
    hint = text.split("read them with ", 1)[1].split("]", 1)[0]
    offset = int(hint.rsplit("offset=", 1)[1].rstrip(")"))
    assert hint.startswith(f'get_cell(cell_id="{cid}", output_index=0')
    page, _, _ = await agent.ok("get_cell", cell_id=cid, output_index=0, offset=offset)
    assert page.startswith("line ") and "next: get_cell(" in page
    assert "line 10000" not in text
    page, _, _ = await agent.ok("get_cell", cell_id=cid, output_index=0, offset=98_000)
    assert "line 10000" in page or "line 9999" in page


@pytest.mark.daemon
@module_loop
async def test_cells_are_resources(agent: Agent, work: str) -> None:
    assert agent.session is not None
    await agent.ok("open_notebook", path=work)
    _, info, _ = await agent.ok("create_cell", source="print('from a resource')", run=True)
    uri = f"notebook://cells/{info['cell_id']}"
    listed = {str(r.uri) for r in (await agent.session.list_resources()).resources}
    assert uri in listed and "notebook://cells" in listed
    read = await agent.session.read_resource(uri)
    body = read.contents[0].text  # type: ignore[union-attr]
    assert "print('from a resource')" in body and "from a resource\n" in body
    whole = await agent.session.read_resource("notebook://cells")
    assert info["cell_id"] in whole.contents[0].text  # type: ignore[union-attr]


@pytest.mark.daemon
@module_loop
async def test_interrupt_and_restart(agent: Agent, work: str) -> None:
    await agent.ok("open_notebook", path=work)
    await agent.ok("create_cell", source="x = 5", run=True)
    text, info, _ = await agent.ok(
        "create_cell", source="import time\ntime.sleep(60)", run=True, timeout=0.5
    )
    eid = info["execution_id"]
    assert not info["finished"]
    text, stopped, _ = await agent.ok("interrupt_kernel")
    assert stopped["interrupted"] == [info["cell_id"]]
    text, done, _ = await agent.ok("get_results", execution_id=eid, timeout=30)
    assert done["status"] == "error" and "KeyboardInterrupt" in text
    text, _, _ = await agent.ok("create_cell", source="x", run=True)
    assert "Out[" in text and ": 5" in text  # an interrupt keeps the namespace

    text, status, _ = await agent.ok("restart_kernel")
    assert "restarted" in text
    text, info, _ = await agent.ok("create_cell", source="x", run=True)
    assert info["status"] == "error" and "NameError" in text
    text, status, _ = await agent.ok("kernel_status")
    assert status["lifecycle"] == "running" and status["env_source"] == "uv:prewarmed"


@pytest.mark.daemon
@module_loop
async def test_sync_environment_restarted_the_kernel_in_the_new_env(
    agent: Agent, deps_sync: dict[str, Any]
) -> None:
    text, info, _ = await deps_sync["task"]
    assert info["env_source"] == "uv:inline" and "psutil>=5" in text
    code = "import psutil, sys\nsys.prefix"
    text, _, _ = await agent.ok("create_cell", source=code, run=True, notebook=deps_sync["path"])
    assert "inline-envs" in text


# --- without a daemon -------------------------------------------------------------------


def test_runt_mcp_help_and_lazy_import() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runtimed.cli.runt_cli", "mcp", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--http" in done.stdout and "mcpServers" in done.stdout
    probe = "import sys, runtimed.cli.runt_cli; print('mcp' in sys.modules)"
    lazy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert lazy.stdout.strip() == "False"  # `runt` does not pay for the MCP SDK


def test_output_helpers() -> None:
    assert strip_ansi("\x1b[1;31mError\x1b[0m: \x1b]0;title\x07x") == "Error: x"
    text = "".join(f"line {i}\n" for i in range(1000))
    cut = clip(text, 300, lambda offset: f"read(offset={offset})")
    assert cut.startswith("line 0\n") and cut.endswith("line 999\n") and len(cut) < 500
    assert "lines) omitted; read them with read(offset=" in cut
    table = "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
    assert html_to_text(f"<style>x{{}}</style>{table}") == "a\tb\n1\t2"


def test_edit_and_dependency_helpers() -> None:
    edit = editing.replace_match("a = 1\nb = 1\n", "= 1", "= 2", context_before="b ")
    assert edit.source == "a = 1\nb = 2\n"
    assert editing.replace_regex("x\n", Matches(((2, 2),), 1), "y").source == "x\ny"
    assert dependencies.add(["Pandas>=1", "numpy"], ["pandas==2.2"]) == ["numpy", "pandas==2.2"]
    assert dependencies.remove(["numpy", "scipy"], ["NumPy", "torch"]) == (["scipy"], ["torch"])
    assert json.loads(json.dumps(dependencies.with_dependencies(None, ["a"]))) == {
        "uv": {"dependencies": ["a"]}
    }
