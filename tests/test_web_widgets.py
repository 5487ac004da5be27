"""ipywidgets in the notebook page (issue 26), in headless Chromium (tests/browser.py):
a slider shows and moving it reaches the kernel and a second page, a Session moves the
page's slider, a Button's click runs on_click, an Output widget shows prints and images,
interact, layouts. One daemon and one browser for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

import runtimed
from browser import WebDaemon, web_daemon
from helpers import wait_until

pytestmark = pytest.mark.daemon

VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_OUTPUT = f'.jp-OutputArea-output[data-mime="{VIEW}"]'


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDaemon]:
    cache = tmp_path_factory.mktemp("widgets-web") / "cache"
    with web_daemon(cache, "--uv-pool-size", "1") as web:
        web.daemon.wait_pool("uv", 1)
        yield web


@pytest.fixture(autouse=True)
def pages(web: WebDaemon, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's pages closed after it; screenshots of them first if it failed."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        web.screenshot_all(request.node.name)
    web.close_pages()


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
