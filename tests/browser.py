"""The Chromium driver of the browser tests and of bench/web.py: Debian's `chromium`
(never a downloaded one: `playwright install` is not used) driven by Playwright for Python,
logged in to a daemon by one-time links, with screenshots kept when a test fails.

``WebDaemon`` is one daemon plus one browser for a test module (``web_fixtures`` gives a
module its fixtures); ``open_notebook`` gives a page that is ready (``body[data-ready="1"]``:
synced, cells rendered, command mode).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from helpers import DaemonProcess
from runtimed.daemon.http.tokens import mint_login_code

#: Where screenshots of failed browser tests go (CI keeps this directory).
ARTIFACTS_DIR = Path(
    os.environ.get("RUNTIMED_ARTIFACTS_DIR", Path(__file__).parent.parent / ".ci" / "artifacts")
)
READY = 'body[data-ready="1"]'


def chromium_path() -> str:
    """The system Chromium; a clear failure (never a skip) when it is missing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        "no Chromium: `apt-get install -y chromium` (.ci/run installs it); the browser "
        "tests drive the system browser, never a downloaded one"
    )


def launch(playwright: Playwright) -> Browser:
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root otherwise
    return playwright.chromium.launch(executable_path=chromium_path(), args=args)


def http_url(daemon: DaemonProcess, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with daemon.client() as client:
            url = client.daemon_info().http_url
        if url is not None:
            return url
        assert time.monotonic() < deadline, "the daemon's HTTP server never started"
        time.sleep(0.05)


class WebDaemon:
    """A daemon and a browser: pages on its notebooks, each in its own browser context
    (its own cookie: another user's browser)."""

    def __init__(self, daemon: DaemonProcess, browser: Browser) -> None:
        self.daemon = daemon
        self.browser = browser
        self.url = http_url(daemon)
        self.token = (daemon.cache_dir / "http-token").read_text().strip()
        self.contexts: list[BrowserContext] = []

    def login_link(self, next_path: str) -> str:
        code = mint_login_code(self.token)
        return f"{self.url}/login?code={code}&next={quote(next_path, safe='/')}"

    def new_page(self, next_path: str = "/", *, wait_ready: bool = True) -> Page:
        """A fresh browser context logged in by a one-time link, on ``next_path``."""
        context = self.browser.new_context(viewport={"width": 1200, "height": 900})
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(self.login_link(next_path))
        if wait_ready:
            page.wait_for_selector(READY, state="attached")
        return page

    def open_notebook(self, notebook_id: str, **kwargs: Any) -> Page:
        return self.new_page("/notebooks/" + quote(notebook_id, safe=""), **kwargs)

    def close_pages(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()

    def screenshot_all(self, name: str) -> list[Path]:
        """Every open page, as PNGs under ARTIFACTS_DIR (for a failed test)."""
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]
        saved = []
        for i, context in enumerate(self.contexts):
            for j, page in enumerate(context.pages):
                path = ARTIFACTS_DIR / f"{stem}-{i}-{j}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                except Exception:  # a crashed page: the others still count
                    continue
                saved.append(path)
        return saved


@contextmanager
def web_daemon(cache_dir: Path, *daemon_args: str) -> Iterator[WebDaemon]:
    """One daemon and one headless Chromium, for a test module or a bench."""
    daemon = DaemonProcess(cache_dir, list(daemon_args)).start()
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                yield WebDaemon(daemon, browser)
            finally:
                browser.close()
    finally:
        daemon.stop()


def web_fixtures(
    name: str,
    *daemon_args: str,
    uv_envs: int = 0,
    environ: Callable[[pytest.FixtureRequest], dict[str, str]] | None = None,
) -> tuple[Any, Any]:
    """A test module's two fixtures, ``web, pages = web_fixtures("web-x", ...)``:

    - ``web`` (module scope): one daemon, started with ``daemon_args`` (its cache in a temp
      directory named ``name``), and one browser. With ``uv_envs`` it waits for that many
      uv envs in the pool before the first test; ``environ(request)`` gives variables the
      daemon starts with (it may ask for the module's other fixtures).
    - ``pages`` (autouse): each test's pages closed after it, screenshots of them first if
      it failed.
    """

    @pytest.fixture(scope="module")
    def web(
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
    ) -> Iterator[WebDaemon]:
        cache = tmp_path_factory.mktemp(name) / "cache"
        with pytest.MonkeyPatch.context() as env:
            for key, value in (environ(request) if environ is not None else {}).items():
                env.setenv(key, value)
            with web_daemon(cache, *daemon_args) as started:
                if uv_envs:
                    started.daemon.wait_pool("uv", uv_envs)
                yield started

    @pytest.fixture(autouse=True)
    def pages(web: WebDaemon, request: pytest.FixtureRequest) -> Iterator[None]:
        failed_before = request.session.testsfailed
        yield
        if request.session.testsfailed > failed_before:
            web.screenshot_all(request.node.name)
        web.close_pages()

    return web, pages


def cell(page: Page, index: int) -> Any:
    """The index-th cell of the page (a Playwright Locator)."""
    return page.locator("#app .jp-Cell").nth(index)


def editor(page: Page, index: int) -> Any:
    return cell(page, index).locator(".cm-editor .cm-content")


def type_in_cell(page: Page, index: int, text: str) -> None:
    """Click the cell's input (edit mode), then type ``text`` as keystrokes."""
    cell(page, index).locator(".jp-InputArea, .runt-source-pre, .cm-editor").first.click()
    target = editor(page, index)
    target.wait_for()
    target.click()
    page.keyboard.type(text)


def source_of(page: Page, index: int) -> str:
    """The cell's source as the page's document has it."""
    value = page.evaluate(
        "(i) => window.runt.doc.getArray('cells').get(i).get('source').toString()", index
    )
    return str(value)
