"""input() and getpass() in the notebook page (issue 30): the page's input connection
(``/ws/input/{id}``) over HTTP (bad ids, a prompt nobody waits on, another client's
prompt, the echo, a closed connection answered EOF), then in headless Chromium
(tests/browser.py): the box under the cell, a password box, an interrupt, a second page
that sees no box and cannot answer, and a page closed while asked.

One daemon and one browser for the module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from playwright.sync_api import Page, expect

from browser import WebDaemon, cell, type_in_cell, web_fixtures
from helpers import wait_until, write_notebook
from runtimed.daemon.execution.input_prompts import PASSWORD_MASK

pytestmark = pytest.mark.daemon

#: A kernel's first start (an env from the pool) is the slow part.
KERNEL_SECS = 90.0
ANSWER_PATH = "/api/notebooks/{id}/executions/{execution_id}/input"

web, pages = web_fixtures("web-input", "--uv-pool-size", "2", uv_envs=1)


def notebook_file(tmp_path: Path, name: str, *sources: str) -> str:
    path = tmp_path / name
    write_notebook(path, *sources)
    return str(path)


# --- over HTTP ---------------------------------------------------------------------------


class Api:
    """The REST API and /ws/input with the daemon's token (a script, not a browser)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def call(
        self, method: str, path: str, body: Any = None, expect: int = 200
    ) -> dict[str, Any]:
        async with self.http.request(method, self.url + path, json=body) as response:
            text = await response.text()
            assert response.status == expect, text
            return dict(json.loads(text))

    async def error(self, method: str, path: str, body: Any, status: int) -> str:
        """The error code of a refused request."""
        return str((await self.call(method, path, body, status))["error"]["code"])

    @asynccontextmanager
    async def input_connection(self, notebook_id: str) -> AsyncIterator[Connection]:
        url = self.url.replace("http", "ws", 1) + "/ws/input/" + quote(notebook_id, safe="")
        async with self.http.ws_connect(url) as ws:
            ready = await ws.receive_json(timeout=10)
            assert ready["event"] == "ready" and len(ready["connection"]) >= 32, ready
            yield Connection(ws, ready["connection"])


class Connection:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, id: str) -> None:
        self.ws = ws
        self.id = id

    async def event(self, timeout: float = KERNEL_SECS) -> dict[str, Any]:
        return dict(await self.ws.receive_json(timeout=timeout))


def nb(notebook_id: str) -> str:
    return "/api/notebooks/" + quote(notebook_id, safe="")


def answer_path(notebook_id: str, execution_id: str) -> str:
    return f"{nb(notebook_id)}/executions/{quote(execution_id, safe='')}/input"


async def wait_ended(api: Api, notebook_id: str, execution_id: str) -> dict[str, Any]:
    """The cell of ``execution_id`` once its execution ended (outputs and all)."""
    async with asyncio.timeout(KERNEL_SECS):
        while True:
            view = await api.call("GET", nb(notebook_id))
            for found in view["cells"]:
                if found["last_execution_id"] == execution_id and found[
                    "last_execution_status"
                ] in ("done", "error", "cancelled"):
                    return dict(found)
            await asyncio.sleep(0.05)


def stdout(found: dict[str, Any]) -> str:
    return "".join("".join(o["text"]) for o in found["outputs"] if o["output_type"] == "stream")


def test_the_input_connection_over_http(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook_file(
        tmp_path,
        "http.ipynb",
        "name = input('name? ')\nprint('hello', name)",
        "import getpass\nprint(len(getpass.getpass('pin: ')))",
    )
    # Its own thread: Playwright's sync API holds this one's event loop.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _over_http(web, path)).result()


async def _over_http(web: WebDaemon, path: str) -> None:
    headers = {"Authorization": f"Bearer {web.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        api = Api(http, web.url)
        notebook_id = (await api.call("POST", "/api/notebooks", {"path": path}))["notebook_id"]
        other_id = (await api.call("POST", "/api/notebooks", {}))["notebook_id"]
        ask, secret = [c["id"] for c in (await api.call("GET", nb(notebook_id)))["cells"]]
        run = f"{nb(notebook_id)}/cells/{ask}/execute"
        async with (
            api.input_connection(notebook_id) as a,
            api.input_connection(notebook_id) as b,
            api.input_connection(other_id) as elsewhere,
        ):
            # Bad ids: a connection nobody has, another notebook's, a prompt nobody waits on.
            code = await api.error("POST", run, {"stdin": "not-a-connection"}, 400)
            assert code == "unknown_input_connection"
            code = await api.error("POST", run, {"stdin": elsewhere.id}, 400)
            assert code == "unknown_input_connection"
            body = {"connection": a.id, "value": "x"}
            assert await api.error("POST", answer_path(notebook_id, "nope"), body, 409) == (
                "not_waiting_for_input"
            )
            code = await api.error(
                "POST", answer_path(notebook_id, "nope"), {"connection": "bogus", "value": ""}, 400
            )
            assert code == "unknown_input_connection"
            assert await api.error("POST", answer_path("no-such-nb", "x"), body, 400) == (
                "unknown_input_connection"  # a's connection is not that notebook's
            )

            queued = await api.call("POST", run, {"stdin": a.id}, expect=202)
            execution_id = queued["execution"]["execution_id"]
            asked = await a.event()
            assert asked == {
                "event": "input_request",
                "execution_id": execution_id,
                "cell_id": ask,
                "prompt": "name? ",
                "password": False,
            }
            # Another client's prompt: b may not answer it, nor may a through another notebook.
            body_b = {"connection": b.id, "value": "mallory"}
            assert await api.error("POST", answer_path(notebook_id, execution_id), body_b, 403) == (
                "not_your_execution"
            )
            body_a = {"connection": a.id, "value": "Ada"}
            assert await api.error("POST", answer_path(other_id, execution_id), body_a, 400) == (
                "unknown_input_connection"
            )
            assert (await api.call("POST", answer_path(notebook_id, execution_id), body_a)) == {
                "type": "done"
            }
            assert await api.error("POST", answer_path(notebook_id, execution_id), body_a, 409) == (
                "not_waiting_for_input"
            )
            found = await wait_ended(api, notebook_id, execution_id)
            assert found["last_execution_status"] == "done", found
            assert stdout(found) == "name? Ada\nhello Ada\n"  # the echo, then the cell's print

            # getpass: a password prompt; the echo masks it.
            queued = await api.call(
                "POST", f"{nb(notebook_id)}/cells/{secret}/execute", {"stdin": a.id}, 202
            )
            execution_id = queued["execution"]["execution_id"]
            asked = await a.event()
            assert asked["password"] is True and asked["prompt"] == "pin: "
            body_a = {"connection": a.id, "value": "hunter2"}
            await api.call("POST", answer_path(notebook_id, execution_id), body_a)
            found = await wait_ended(api, notebook_id, execution_id)
            assert stdout(found) == f"pin: {PASSWORD_MASK}\n7\n"
            assert "hunter2" not in json.dumps(found)
            # b was never asked anything.
            with pytest.raises(asyncio.TimeoutError):
                await b.ws.receive(timeout=0.2)

        # A connection that closes while asked is answered end of input.
        async with api.input_connection(notebook_id) as gone:
            queued = await api.call("POST", run, {"stdin": gone.id}, 202)
            execution_id = queued["execution"]["execution_id"]
            assert (await gone.event())["event"] == "input_request"
        found = await wait_ended(api, notebook_id, execution_id)
        errors = [o for o in found["outputs"] if o["output_type"] == "error"]
        assert [e["ename"] for e in errors] == ["EOFError"], found["outputs"]
        code = await api.error("POST", run, {"stdin": gone.id}, 400)  # closed: unknown now
        assert code == "unknown_input_connection"

        # The connection only receives: a message from the client closes it.
        async with api.input_connection(notebook_id) as chatty:
            await chatty.ws.send_str("hello")
            refused = await chatty.event(10)
            assert refused["event"] == "error" and "only receives" in refused["message"]
            assert (await chatty.ws.receive(timeout=10)).type == aiohttp.WSMsgType.CLOSE
            assert chatty.ws.close_code == 4003

        # A notebook id no room could have: refused before the upgrade.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused_id:
            await http.ws_connect(web.url + "/ws/input/" + "a" * 2000)
        assert refused_id.value.status == 400

        operation = (await api.call("GET", "/api/openapi.json"))["paths"][ANSWER_PATH]["post"]
        assert {"403", "409"} <= set(operation["responses"])


# --- in the page -------------------------------------------------------------------------


def stdin_box(page: Page, index: int = 0) -> Any:
    return cell(page, index).locator(".runt-stdin")


def run_first_cell(page: Page) -> None:
    type_in_cell(page, 0, "")
    page.keyboard.press("Shift+Enter")


def cell_text(page: Page, index: int = 0) -> Any:
    return cell(page, index).locator(".jp-OutputArea")


def test_input_answered_in_the_page_and_not_in_another(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook_file(tmp_path, "ask.ipynb", "name = input('name? ')\nprint('hello', name)")
    page, other = web.open_notebook(path), web.open_notebook(path)
    run_first_cell(page)
    box = stdin_box(page)
    expect(box).to_be_visible(timeout=KERNEL_SECS * 1000)
    expect(box.locator(".runt-stdin-prompt")).to_have_text("name? ")
    field = box.locator("input")
    expect(field).to_have_attribute("type", "text")
    expect(field).to_be_focused()
    # The second page sees no box, and its answer is refused.
    expect(cell(other, 0)).to_have_attribute("data-state", "running")
    expect(stdin_box(other)).to_have_count(0)
    execution_id = box.get_attribute("data-execution-id")
    refused = other.evaluate("([id]) => window.runt.input.answer(id, 'mallory')", [execution_id])
    assert "only the client that started this execution" in refused
    field.press_sequentially("Ada")
    field.press("Enter")
    expect(box).to_have_count(0)
    expect(cell_text(page)).to_contain_text("name? Ada\nhello Ada")
    expect(cell_text(other)).to_contain_text("name? Ada\nhello Ada")  # the echo is shared
    assert "mallory" not in cell_text(page).inner_text()


def test_getpass_asks_in_a_password_box_and_shows_no_value(web: WebDaemon, tmp_path: Path) -> None:
    code = "import getpass\nuser = input('user? ')\npin = getpass.getpass('pin: ')\n"
    path = notebook_file(tmp_path, "pin.ipynb", code + "print(user, len(pin))")
    page = web.open_notebook(path)
    run_first_cell(page)
    field = stdin_box(page).locator("input")
    expect(field).to_have_attribute("type", "text", timeout=KERNEL_SECS * 1000)
    field.press_sequentially("ada")
    field.press("Enter")  # the next prompt follows at once: its box stays
    expect(field).to_have_attribute("type", "password")
    expect(stdin_box(page).locator(".runt-stdin-prompt")).to_have_text("pin: ")
    field.press_sequentially("hunter2")
    field.press("Enter")
    expect(stdin_box(page)).to_have_count(0)
    expect(cell_text(page)).to_contain_text(f"user? ada\npin: {PASSWORD_MASK}\nada 7")
    assert "hunter2" not in page.locator("#app").inner_text()


def test_an_interrupt_removes_the_box_and_ends_the_cell(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook_file(tmp_path, "interrupt.ipynb", "input('wait? ')")
    page = web.open_notebook(path)
    run_first_cell(page)
    expect(stdin_box(page)).to_be_visible(timeout=KERNEL_SECS * 1000)
    page.locator('button[data-command="interrupt"]').click()
    expect(stdin_box(page)).to_have_count(0)
    error = cell(page, 0).locator('[data-mime="application/vnd.jupyter.error"]')
    expect(error).to_contain_text("KeyboardInterrupt")
    expect(cell(page, 0)).to_have_attribute("data-state", "idle")


def test_a_page_closed_while_asked_answers_end_of_input(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook_file(tmp_path, "leave.ipynb", "input('still there? ')")
    page, other = web.open_notebook(path), web.open_notebook(path)
    run_first_cell(page)
    expect(stdin_box(page)).to_be_visible(timeout=KERNEL_SECS * 1000)
    expect(stdin_box(other)).to_have_count(0)
    page.context.close()
    error = cell(other, 0).locator('[data-mime="application/vnd.jupyter.error"]')
    expect(error).to_contain_text("EOFError")
    wait_until(
        lambda: cell(other, 0).get_attribute("data-state") == "idle", 10, what="the cell's end"
    )
