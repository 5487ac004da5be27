"""The notebook page in a real browser (headless Chromium, tests/browser.py): typing and
running a cell, a Session's edits both ways, outputs of every kind, the keyboard model,
two pages typing in one cell at once, the output sandbox, and a daemon restart.

One daemon and one browser for the module; a failed test leaves screenshots of its pages
in ARTIFACTS_DIR.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

import runtimed
from browser import WebDaemon, cell, source_of, type_in_cell, web_fixtures
from helpers import wait_until, write_notebook

pytestmark = pytest.mark.daemon

# Two uv envs: a notebook's kernel and a runtime's.
web, pages = web_fixtures("browser", "--uv-pool-size", "2")


def notebook_file(tmp_path: Path, name: str, *sources: str) -> str:
    path = tmp_path / name
    write_notebook(path, *sources)
    return str(path)


def test_type_a_cell_and_run_it(web: WebDaemon, tmp_path: Path) -> None:
    web.daemon.wait_pool("uv", 1)
    page = web.open_notebook(notebook_file(tmp_path, "run.ipynb", ""))
    type_in_cell(page, 0, "6 * 7")
    page.keyboard.press("Shift+Enter")
    result = cell(page, 0).locator('.jp-OutputArea-output[data-output-type="execute_result"]')
    expect(result).to_have_text("42", timeout=90_000)
    expect(cell(page, 0).locator(".jp-OutputPrompt").first).to_have_text("[1]:")
    expect(cell(page, 0).locator(".jp-InputPrompt")).to_have_text("[1]:")
    # Shift-Enter at the last cell adds one below and selects it (JupyterLab).
    expect(page.locator("#app .jp-Cell")).to_have_count(2)
    expect(cell(page, 1)).to_have_class(_has("jp-mod-selected"))


def test_a_sessions_edit_appears_and_the_pages_reaches_it(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook_file(tmp_path, "shared.ipynb", "a = 1")
    page = web.open_notebook(path)
    with runtimed.Session.open(path, socket_path=web.daemon.socket) as session:
        (first,) = session.get_cells()
        session.set_source(first.id, "a = 'from the session'")
        expect(cell(page, 0)).to_contain_text("from the session")
        type_in_cell(page, 0, "  # from the page")
        wait_until(
            lambda: session.get_cells()[0].source.endswith("# from the page"),
            10,
            what="the page's edit to reach the Session",
        )


def test_outputs_of_every_kind(web: WebDaemon, tmp_path: Path) -> None:
    path = tmp_path / "outputs.ipynb"
    path.write_text(json.dumps(_outputs_notebook()))
    page = web.open_notebook(str(path))
    out = page.locator(".jp-OutputArea-output")
    stream = out.and_(page.locator('[data-output-type="stream"]'))
    expect(stream).to_contain_text("red text")
    colour = stream.locator("span", has_text="red text").first.evaluate(
        "(e) => getComputedStyle(e).color"
    )
    assert colour not in ("rgb(0, 0, 0)", ""), colour  # ANSI red is coloured
    expect(out.and_(page.locator('[data-mime="image/png"]')).locator("img")).to_be_visible()
    expect(out.and_(page.locator('[data-mime="text/markdown"]')).locator("h2")).to_have_text(
        "Heading"
    )
    expect(
        out.and_(page.locator('[data-mime="text/latex"]')).locator(".katex").first
    ).to_be_visible()
    expect(out.and_(page.locator('[data-mime="application/json"]'))).to_contain_text("answer")
    error = out.and_(page.locator('[data-mime="application/vnd.jupyter.error"]'))
    expect(error).to_contain_text("ZeroDivisionError")
    frame = out.and_(page.locator('[data-mime="text/html"]')).locator("iframe.runt-output-frame")
    sandbox = (frame.get_attribute("sandbox") or "").split()
    assert "allow-scripts" in sandbox and "allow-same-origin" not in sandbox, sandbox
    html = frame.content_frame
    expect(html.locator("b#html-output")).to_have_text("bold html")
    # Markdown cells render (math too), sanitized: the script of an <img onerror> is gone.
    rendered = page.locator(".jp-MarkdownCell.jp-mod-rendered .jp-RenderedMarkdown")
    expect(rendered.locator(".katex").first).to_be_visible()
    assert rendered.locator("img[onerror]").count() == 0
    assert page.evaluate("window.__pwned === undefined")


def test_keyboard_model(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook_file(tmp_path, "keys.ipynb", "first", "second")
    page = web.open_notebook(path)
    cells = page.locator("#app .jp-Cell")
    expect(cells).to_have_count(2)
    assert page.evaluate("window.runt.mode()") == "command"
    ids = page.evaluate("window.runt.cellIds()")
    page.keyboard.press("b")  # below the selected (first) cell
    expect(cells).to_have_count(3)
    expect(cell(page, 1)).to_have_class(_has("jp-mod-selected"))
    page.keyboard.press("a")  # above: the new one is at index 1, the other moves down
    expect(cells).to_have_count(4)
    page.keyboard.press("d")
    page.keyboard.press("d")
    expect(cells).to_have_count(3)
    page.keyboard.press("z")  # undo the delete
    expect(cells).to_have_count(4)
    selected = page.locator("#app .jp-Cell.jp-mod-selected")
    expect(selected).to_have_count(1)
    chosen = selected.get_attribute("data-cell-id")
    index = page.evaluate("window.runt.cellIds()").index(chosen)
    page.keyboard.press("m")
    expect(cell(page, index)).to_have_attribute("data-cell-type", "markdown")
    page.keyboard.press("y")
    expect(cell(page, index)).to_have_attribute("data-cell-type", "code")
    page.keyboard.press("Enter")
    wait_until(lambda: page.evaluate("window.runt.mode()") == "edit", 5, what="edit mode")
    expect(page.locator("#app")).to_have_class(_has("jp-mod-editMode"))
    page.keyboard.type("typed")
    page.keyboard.press("Escape")
    expect(page.locator("#app")).to_have_class(_has("jp-mod-commandMode"))
    assert source_of(page, index) == "typed"
    now = page.evaluate("window.runt.cellIds()")
    assert now[0] == ids[0] and now[-1] == ids[1]


def test_shift_tab_help_of_the_last_cell_is_shown_whole(web: WebDaemon, tmp_path: Path) -> None:
    # Cells contain their paint (content-visibility: auto): the edited cell must not, or its
    # tooltip is cut at the cell's bottom edge, as it was for the last cell.
    page = web.open_notebook(notebook_file(tmp_path, "help.ipynb", "x = 1", ""))
    page.set_viewport_size({"width": 1000, "height": 500})
    type_in_cell(page, 0, "")
    page.keyboard.press("Shift+Enter")  # a running kernel answers the help request
    expect(cell(page, 0).locator(".jp-InputPrompt")).to_have_text("[1]:", timeout=90_000)
    type_in_cell(page, 1, "print")
    page.keyboard.press("Shift+Tab")
    tip = page.locator(".runt-inspect-tooltip")
    expect(tip).to_contain_text("Signature", timeout=30_000)
    box = tip.bounding_box()
    assert box is not None and box["height"] > 100  # the docstring, not one line
    bottom = box["y"] + box["height"] - 4  # what the page shows there is the tooltip
    shown = page.evaluate(
        "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.runt-inspect-tooltip')",
        [box["x"] + 20, bottom],
    )
    assert shown


def test_two_pages_typing_in_one_cell_lose_nothing(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook_file(tmp_path, "coedit.ipynb", "")
    one, two = web.open_notebook(path), web.open_notebook(path)
    type_in_cell(one, 0, "")
    type_in_cell(two, 0, "")
    left, right = "abcdefghij" * 4, "0123456789" * 4
    for a, b in zip(left, right, strict=True):  # interleaved, each page at its own caret
        one.keyboard.type(a)
        two.keyboard.type(b)

    def merged() -> bool:
        text = source_of(one, 0)
        return len(text) == 80 and text == source_of(two, 0)

    wait_until(merged, 10, what="both pages to hold all 80 characters")
    text = source_of(one, 0)
    assert sorted(text) == sorted(left + right)
    assert "".join(c for c in text if c.isalpha()) == left
    assert "".join(c for c in text if c.isdigit()) == right
    expect(one.locator(".cm-ySelectionCaret").first).to_be_attached()


def test_an_outputs_script_cannot_reach_the_page_or_the_api(web: WebDaemon, tmp_path: Path) -> None:
    probe = (
        "<div id='probe'>probing</div><script>"
        "const r = {};"
        "try { r.cookie = document.cookie; } catch (e) { r.cookie = 'blocked: ' + e.name; }"
        "try { r.parent = String(window.parent.document.cookie); }"
        " catch (e) { r.parent = 'blocked: ' + e.name; }"
        "fetch(PAGE + '/api/notebooks', {credentials: 'include'})"
        ".then(x => x.status, e => 'blocked: ' + e.name)"
        ".then(s => { r.fetch = String(s); document.getElementById('probe').textContent ="
        " JSON.stringify(r); });"
        "</script>"
    ).replace("PAGE", json.dumps(web.url))
    nb = _notebook([_code("html", [_display({"text/html": probe})])])
    path = tmp_path / "sandbox.ipynb"
    path.write_text(json.dumps(nb))
    page = web.open_notebook(str(path))
    frame = page.locator("iframe.runt-output-frame").first.content_frame
    probe_node = frame.locator("#probe")
    expect(probe_node).not_to_have_text("probing", timeout=15_000)
    found = json.loads(probe_node.inner_text())
    assert "runtimed_session" not in found["cookie"]
    assert found["parent"].startswith("blocked")
    assert found["fetch"].startswith("blocked")
    # The page itself does hold a session (HttpOnly: not in document.cookie either).
    cookies = page.context.cookies()
    assert any(c["name"] == "runtimed_session" and c["httpOnly"] for c in cookies)


def test_the_sidecar_shows_a_consoles_rich_outputs(web: WebDaemon, tmp_path: Path) -> None:
    web.daemon.wait_pool("uv", 1)
    with web.daemon.client() as client:
        runtime = client.start_runtime("python3", "auto", str(tmp_path))
    try:
        page = web.new_page(f"/sidecar/{runtime.runtime_id}")
        expect(page.locator("#app.runt-sidecar")).to_be_attached()
        with runtimed.Session(runtime.notebook_id, socket_path=web.daemon.socket) as console:
            console.run("from IPython.display import Markdown\nMarkdown('**bold** words')")
        entry = page.locator("#app.runt-sidecar .runt-sidecar-entry").last
        rendered = entry.locator('.jp-OutputArea-output[data-mime="text/markdown"] strong')
        expect(rendered).to_have_text("bold", timeout=30_000)
        assert entry.get_attribute("data-execution-id")
    finally:
        with web.daemon.client() as client:
            client.kill_runtimes([runtime.runtime_id])


def test_reconnect_after_a_daemon_restart_duplicates_nothing(
    web: WebDaemon, tmp_path: Path
) -> None:
    path = notebook_file(tmp_path, "restart.ipynb", "x = 1", "y = 2")
    page = web.open_notebook(path)
    expect(page.locator("#app .jp-Cell")).to_have_count(2)
    port = web.url.rsplit(":", 1)[1]
    web.daemon.stop()
    expect(page.locator("body")).to_have_attribute("data-connected", "0", timeout=15_000)
    web.daemon.args = [*web.daemon.args, "--http-listen", f"127.0.0.1:{port}"]
    web.daemon.start()
    expect(page.locator("body")).to_have_attribute("data-connected", "1", timeout=30_000)
    type_in_cell(page, 1, "  # after")
    with runtimed.Session.open(path, socket_path=web.daemon.socket) as session:
        wait_until(lambda: session.get_cells()[-1].source.endswith("# after"), 10, what="the edit")
        assert [c.source for c in session.get_cells()] == ["x = 1", "y = 2  # after"]
    expect(page.locator("#app .jp-Cell")).to_have_count(2)


# --- notebooks with outputs ---------------------------------------------------------------


def _has(name: str) -> Any:
    import re

    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def _notebook(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": cells,
    }


def _code(ident: str, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": ident,
        "cell_type": "code",
        "source": f"# {ident}",
        "metadata": {},
        "execution_count": 1,
        "outputs": outputs,
    }


def _display(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def _png() -> str:
    """A 2x2 red PNG, made here."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()


def _outputs_notebook() -> dict[str, Any]:
    markdown = {
        "id": "md",
        "cell_type": "markdown",
        "source": "# Title\n\nmath $e^{i\\pi} + 1 = 0$ <img src=x onerror='window.__pwned=1'>",
        "metadata": {},
    }
    error = {
        "output_type": "error",
        "ename": "ZeroDivisionError",
        "evalue": "division by zero",
        "traceback": ["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"],
    }
    return _notebook(
        [
            markdown,
            _code(
                "stream",
                [{"output_type": "stream", "name": "stdout", "text": "\x1b[31mred text\x1b[0m\n"}],
            ),
            _code("png", [_display({"image/png": _png(), "text/plain": "<image>"})]),
            _code("markdown", [_display({"text/markdown": "## Heading", "text/plain": "md"})]),
            _code("latex", [_display({"text/latex": "$\\frac{1}{2}$", "text/plain": "1/2"})]),
            _code("json", [_display({"application/json": {"answer": 42}, "text/plain": "{}"})]),
            _code("error", [error]),
            _code("html", [_display({"text/html": "<b id='html-output'>bold html</b>"})]),
        ]
    )
