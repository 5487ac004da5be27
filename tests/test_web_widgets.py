"""ipywidgets in the notebook page (issue 26), in headless Chromium (tests/browser.py):
a slider shows and moving it reaches the kernel and a second page, a Session moves the
page's slider, a Button's click runs on_click, an Output widget shows prints and images,
interact, layouts; an anywidget from PyPI (wigglystuff's ColorPicker) runs in its
sandboxed frame and syncs both ways; the kernel's custom messages reach the page's
models and the page's binary values and buffers reach the kernel intact. One daemon (its
uv envs with anywidget and wigglystuff) and one browser for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

import runtimed
from browser import WebDaemon, web_fixtures
from helpers import wait_until

pytestmark = pytest.mark.daemon

VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_OUTPUT = f'.jp-OutputArea-output[data-mime="{VIEW}"]'

#: In every uv env of the daemon's pool (wigglystuff's ColorPicker is an anywidget).
ENV_PACKAGES = ("--uv-package", "anywidget", "--uv-package", "wigglystuff")
web, pages = web_fixtures("widgets-web", "--uv-pool-size", "1", *ENV_PACKAGES, uv_envs=1)


@pytest.fixture
def session(web: WebDaemon, request: pytest.FixtureRequest) -> Iterator[runtimed.Session]:
    """A Session on a notebook of its own (named after the test)."""
    name = request.node.name.replace("_", "-")[:60]
    s = runtimed.Session(name, socket_path=web.daemon.socket).connect()
    yield s
    s.close()


def shown_model(result: Any) -> str:
    assert result.success, result.message
    views = [o.data[VIEW] for o in result.outputs if o.data and VIEW in o.data]
    assert views, result.outputs
    return str(views[-1]["model_id"])


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


SLIDER = (
    "import ipywidgets as w\n"
    "s = w.IntSlider(value=5, max=100, description='n')\n"
    "seen = []\n"
    "s.observe(lambda change: seen.append(change['new']), 'value')\n"
    "s"
)


def slider_value(page: Page) -> Any:
    return page.locator(f"{WIDGET_OUTPUT} .widget-slider .widget-readout").first


def test_a_slider_moved_in_a_page_reaches_the_kernel_and_another_page(
    web: WebDaemon, session: runtimed.Session
) -> None:
    model = shown_model(session.run(SLIDER))
    page = web.open_notebook(session.notebook_id)
    errors = console_errors(page)
    other = web.open_notebook(session.notebook_id)
    expect(slider_value(page)).to_have_text("5", timeout=20_000)
    expect(slider_value(other)).to_have_text("5", timeout=20_000)
    assert page.evaluate("() => window.runt.widgets()")[model]["value"] == 5
    # Keyboard on the slider's handle (noUiSlider: arrows step by 1).
    handle = page.locator(f"{WIDGET_OUTPUT} .widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(slider_value(page)).to_have_text("8")
    expect(slider_value(other)).to_have_text("8", timeout=10_000)
    wait_until(lambda: session.widgets()[model]["value"] == 8, 10, what="the Session to see 8")
    r = session.run("print(s.value, seen[-1])")
    assert r.stdout == "8 8\n", r.stdout
    # A Session moves the pages' sliders.
    session.set_widget_state(model, {"value": 42})
    expect(slider_value(page)).to_have_text("42", timeout=10_000)
    expect(slider_value(other)).to_have_text("42", timeout=10_000)
    assert session.run("print(s.value)").stdout == "42\n"
    # The kernel changes it: both pages follow.
    session.run("s.value = 17")
    expect(slider_value(page)).to_have_text("17", timeout=10_000)
    expect(slider_value(other)).to_have_text("17", timeout=10_000)
    assert not [e for e in errors if "widget" in e.lower()], errors


def test_text_and_a_button_click_runs_on_click(web: WebDaemon, session: runtimed.Session) -> None:
    code = (
        "import ipywidgets as w\n"
        "t = w.Text(value='hello')\n"
        "b = w.Button(description='go')\n"
        "clicks = []\n"
        "b.on_click(lambda button: clicks.append(t.value))\n"
        "w.HBox([t, b])"
    )
    shown_model(session.run(code))
    page = web.open_notebook(session.notebook_id)
    box = page.locator(f"{WIDGET_OUTPUT} .widget-hbox").first
    text = box.locator(".widget-text input")
    expect(text).to_have_value("hello", timeout=20_000)
    text.fill("typed in the page")
    text.press("Enter")
    wait_until(
        lambda: session.run("print(t.value)").stdout == "typed in the page\n",
        15,
        what="the text typed in the page to reach the kernel",
    )
    box.locator("button", has_text="go").click()
    wait_until(
        lambda: session.run("print(clicks)").stdout == "['typed in the page']\n",
        15,
        what="the click to run on_click",
    )


def test_an_output_widget_shows_prints_and_images(
    web: WebDaemon, session: runtimed.Session
) -> None:
    code = (
        "import ipywidgets as w\n"
        "from IPython.display import display, Image\n"
        "import base64\n"
        "PNG = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
        "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')\n"
        "out = w.Output()\n"
        "b = w.Button(description='more')\n"
        "b.on_click(lambda _: out.append_stdout('clicked\\n'))\n"
        "def on_click(_):\n"
        "    with out:\n"
        "        print('printed by on_click')\n"
        "b.on_click(on_click)\n"
        "with out:\n"
        "    print('inside the output widget')\n"
        "    display(Image(data=PNG, format='png'))\n"
        "w.VBox([b, out])"
    )
    r = session.run(code)
    shown_model(r)
    assert "inside the output widget" not in r.stdout  # captured, not the cell's
    page = web.open_notebook(session.notebook_id)
    widget = page.locator(f"{WIDGET_OUTPUT} .widget-vbox").first
    output = widget.locator(".widget-output")
    expect(output).to_contain_text("inside the output widget", timeout=20_000)
    expect(output.locator("img.jp-RenderedImage")).to_have_count(1)
    widget.locator("button", has_text="more").click()
    expect(output).to_contain_text("printed by on_click", timeout=15_000)
    expect(output).to_contain_text("clicked")


def test_interact(web: WebDaemon, session: runtimed.Session) -> None:
    code = (
        "from ipywidgets import interact\n"
        "@interact(x=(0, 10))\n"
        "def square(x=3):\n"
        "    print('square', x * x)\n"
    )
    shown_model(session.run(code))
    page = web.open_notebook(session.notebook_id)
    widget = page.locator(f"{WIDGET_OUTPUT} .widget-interact").first
    expect(widget.locator(".widget-output")).to_contain_text("square 9", timeout=20_000)
    handle = widget.locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowRight")
    expect(widget.locator(".widget-output")).to_contain_text("square 16", timeout=15_000)
    expect(widget.locator(".widget-output")).not_to_contain_text("square 9")


# --- anywidget, custom messages, binary values -------------------------------------------

FRAME = f"{WIDGET_OUTPUT} iframe.runt-widget-frame"


def widget_frame(page: Page) -> Any:
    return page.frame_locator(FRAME).first


def test_an_anywidget_from_pypi_runs_sandboxed_and_syncs(
    web: WebDaemon, session: runtimed.Session
) -> None:
    code = (
        "from wigglystuff import ColorPicker\n"
        "p = ColorPicker(color='#ff0000')\n"
        "seen = []\n"
        "p.observe(lambda change: seen.append(change['new']), 'color')\n"
        "p"
    )
    model = shown_model(session.run(code))
    assert session.widgets()[model]["_esm"].startswith("function render")  # a blob, as text
    page = web.open_notebook(session.notebook_id)
    errors = console_errors(page)
    other = web.open_notebook(session.notebook_id)
    picker = widget_frame(page).locator("input.colorpicker-input")
    expect(picker).to_have_value("#ff0000", timeout=20_000)
    label = widget_frame(other).locator(".colorpicker-label")
    expect(label).to_have_text("#ff0000", timeout=20_000)
    # The module runs on an opaque origin: it reads neither a cookie nor the page.
    frame = next(f for f in page.frames if f.url.endswith("/widget-frame"))
    probe = (
        "() => [window.origin, ...[() => document.cookie, () => parent.document.title].map("
        "(read) => { try { return read(); } catch (e) { return e.name; } })]"
    )
    assert frame.evaluate(probe) == ["null", "SecurityError", "SecurityError"]
    picker.fill("#00ff00")  # its input event: model.set + save_changes in the frame
    expect(label).to_have_text("#00ff00", timeout=10_000)
    wait_until(
        lambda: session.run("print(p.color, seen[-1])").stdout == "#00ff00 #00ff00\n",
        15,
        what="the page's colour to reach the kernel's trait",
    )
    session.run("p.color = '#0000ff'")
    expect(picker).to_have_value("#0000ff", timeout=10_000)
    expect(label).to_have_text("#0000ff", timeout=10_000)
    assert session.run("print(seen)").stdout == "['#00ff00', '#0000ff']\n"
    assert not [e for e in errors if "widget" in e.lower()], errors


ECHO_ESM = """
export default {
  initialize({ model }) {
    model.on("msg:custom", (content, buffers) => {
      if (content.ping === undefined) return;
      const got = buffers.map((b) => [...new Uint8Array(b.buffer, b.byteOffset, b.byteLength)]);
      model.send({ pong: content.ping, got }, undefined, [new Uint8Array([7, 8, 9])]);
    });
  },
  render({ model, el }) {
    const out = Object.assign(document.createElement("pre"), { className: "out" });
    const button = Object.assign(document.createElement("button"), { textContent: "bytes" });
    el.append(out, button);
    model.on("msg:custom", (content) => { out.textContent = "ping " + content.ping; });
    button.addEventListener("click", () => {
      model.set("data", new DataView(new Uint8Array([1, 2, 3, 250]).buffer));
      model.save_changes();
    });
    return () => model.send({ cleanup: "render" });
  },
};
"""

ECHO = (
    "import anywidget, traitlets\n"
    "from ipywidgets.widgets.trait_types import bytes_serialization\n"
    "class Echo(anywidget.AnyWidget):\n"
    f"    _esm = {ECHO_ESM!r}\n"
    "    data = traitlets.Bytes(b'').tag(sync=True, **bytes_serialization)\n"
    "e = Echo()\n"
    "got = []\n"
    "e.on_msg(lambda _, content, buffers: got.append((content, [bytes(b) for b in buffers])))\n"
    "e"
)


def test_custom_messages_and_binary_values_between_an_anywidget_and_the_kernel(
    web: WebDaemon, session: runtimed.Session
) -> None:
    model = shown_model(session.run(ECHO))
    page = web.open_notebook(session.notebook_id)
    frame = widget_frame(page)
    expect(frame.locator("button", has_text="bytes")).to_be_visible(timeout=20_000)
    # The kernel's e.send(...) reaches initialize's and render's msg:custom listeners,
    # with its buffers; the frame's answer reaches the kernel with its own.
    session.run("e.send({'ping': 1}, buffers=[b'\\x01\\x02'])")
    expect(frame.locator("pre.out")).to_have_text("ping 1", timeout=10_000)
    expected = "[({'pong': 1, 'got': [[1, 2]]}, [b'\\x07\\x08\\t'])]\n"
    wait_until(
        lambda: session.run("print(got)").stdout == expected,
        15,
        what="the frame's answer with its buffer to reach the kernel",
    )
    # A binary value set in the frame reaches the kernel's trait and every client.
    frame.locator("button", has_text="bytes").click()
    wait_until(
        lambda: session.run("print(e.data)").stdout == "b'\\x01\\x02\\x03\\xfa'\n",
        15,
        what="the frame's bytes to reach the kernel's trait",
    )
    assert session.widgets()[model]["data"] == b"\x01\x02\x03\xfa"
    # A new module (anywidget's hot reload): the old render's cleanup runs, the new renders.
    v2 = "export default { render({ el }) { el.textContent = 'v2'; } }"
    session.run(f"got.clear()\ne._esm = {v2!r}")
    expect(frame.locator("#root")).to_have_text("v2", timeout=10_000)
    wait_until(
        lambda: session.run("print(got)").stdout == "[({'cleanup': 'render'}, [])]\n",
        15,
        what="the old module's cleanup to run",
    )
    # A module at an http URL (a dev server) is refused by the frame's CSP: said plainly.
    session.run("e._esm = 'http://127.0.0.1:9/widget.js'")
    expect(frame.locator("pre.error")).to_contain_text("over https only", timeout=10_000)


def test_custom_messages_of_an_ipywidgets_model_both_ways(
    web: WebDaemon, session: runtimed.Session
) -> None:
    code = (
        "import ipywidgets as w\n"
        "b = w.Button(description='x')\n"
        "received = []\n"
        "b.on_msg(lambda _, content, bufs: received.append((content, [bytes(x) for x in bufs])))\n"
        "b"
    )
    model = shown_model(session.run(code))
    page = web.open_notebook(session.notebook_id)
    expect(page.locator(f"{WIDGET_OUTPUT} button", has_text="x")).to_be_visible(timeout=20_000)
    listen = (
        "async (id) => { const m = await window.runtWidgets.model(id); window.got = [];"
        " m.on('msg:custom', (c, bufs) => window.got.push([c, bufs.map((v) =>"
        " Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)))])); }"
    )
    page.evaluate(listen, model)
    session.run("b.send({'x': 1}, buffers=[b'ab'])")
    wait_until(
        lambda: page.evaluate("() => window.got") == [[{"x": 1}, [[97, 98]]]],
        10,
        what="the kernel's custom message to reach the page's model",
    )
    # In the order sent: a message whose buffer the page fetches first is not overtaken.
    page.evaluate("() => { window.got = []; }")
    session.run("b.send({'n': 1}, buffers=[b'x' * 200_000]); b.send({'n': 2})")
    wait_until(lambda: len(page.evaluate("() => window.got")) == 2, 10, what="both messages")
    assert [c["n"] for c, _ in page.evaluate("() => window.got")] == [1, 2]
    send = (
        "async (id) => (await window.runtWidgets.model(id))"
        ".send({y: 2}, {}, [new Uint8Array([5, 6])])"
    )
    page.evaluate(send, model)
    wait_until(
        lambda: session.run("print(received)").stdout == "[({'y': 2}, [b'\\x05\\x06'])]\n",
        15,
        what="the page's custom message with its buffer to reach the kernel",
    )
