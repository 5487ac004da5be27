"""`runt open` and the sidecar link: a one-time login link that lands a browser on the
notebook's (or runtime's) page, the default browser opened with it ($BROWSER), the
daemon started when none runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

import runtimed
from helpers import DaemonProcess, wait_until, write_notebook

pytestmark = pytest.mark.daemon

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("open") / "cache", ["--uv-pool-size", "1"])
    d.start()
    try:
        yield d
    finally:
        d.stop()


def runt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runt"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


async def follow(link: str) -> tuple[str, str]:
    """What a browser gets from a login link: the final path and its HTML."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session, session.get(link) as page:
        assert page.status == 200, await page.text()
        return page.url.raw_path, await page.text()


async def test_open_a_file_prints_a_link_to_its_page(daemon: DaemonProcess, tmp_path: Path) -> None:
    path = tmp_path / "hello.ipynb"
    write_notebook(path, "print('hello')")
    done = runt("open", str(path), "--no-browser", "--socket", str(daemon.socket))
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert "/login?code=" in link and "token" not in link
    final, html = await follow(link)
    assert final == "/notebooks/" + quote(str(path), safe="")
    assert f'data-notebook-id="{path}"' in html
    # The link is spent: a second browser gets 403.
    async with aiohttp.ClientSession() as session, session.get(link) as again:
        assert again.status == 403


async def test_open_new_opens_the_default_browser(daemon: DaemonProcess, tmp_path: Path) -> None:
    seen = tmp_path / "browser-saw"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {seen}\n")
    browser.chmod(0o755)
    done = runt("open", "--new", "--socket", str(daemon.socket), env={"BROWSER": str(browser)})
    assert done.returncode == 0, done.stderr
    assert "opened a new notebook in the browser" in done.stdout
    wait_until(seen.exists, 10, what="the browser to be run")
    final, html = await follow(seen.read_text())
    assert final.startswith("/notebooks/untitled-") and 'data-page="notebook"' in html


def test_open_refuses_what_is_no_notebook(daemon: DaemonProcess, tmp_path: Path) -> None:
    sock = str(daemon.socket)
    for args, message in [
        ((), "give a FILE.ipynb to open, or --new"),
        ((str(tmp_path),), "is a directory"),
        ((str(tmp_path / "a.ipynb"), "--new"), "not both"),
    ]:
        done = runt("open", *args, "--no-browser", "--socket", sock)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


async def test_sidecar_link_of_a_runtime(daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon.wait_pool("uv", 1)
    with daemon.client() as client:
        runtime = client.start_runtime("python3", "auto", str(tmp_path))
    try:
        link = runtimed.sidecar(runtime.runtime_id[:5], open_browser=False, socket=daemon.socket)
        final, html = await follow(link)
        assert final == f"/sidecar/{runtime.runtime_id}"
        assert 'data-page="sidecar"' in html and f'data-runtime-id="{runtime.runtime_id}"' in html
        with pytest.raises(runtimed.RuntimedError, match="no runtime"):
            runtimed.sidecar("zzzz", open_browser=False, socket=daemon.socket)
    finally:
        with daemon.client() as client:
            client.kill_runtimes([runtime.runtime_id])


async def test_open_starts_the_daemon(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.json").write_text(
        '{"uv": {"pool_size": 0}, "conda": {"pool_size": 0}, "kernel_pool": {"size": 0}}'
    )
    env = {
        "RUNTIMED_CACHE_DIR": str(cache),
        "RUNTIMED_CONFIG_DIR": str(config),
        "RUNTIMED_NO_AUTOSTART": "",
    }
    try:
        done = runt("open", "--new", "--no-browser", env=env)
        assert done.returncode == 0, done.stderr
        final, _ = await follow(done.stdout.strip())
        assert final.startswith("/notebooks/untitled-")
    finally:
        subprocess.run(
            [str(BIN / "runtimed"), "stop"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
        )
    assert not (cache / "runtimed.sock").exists()


async def test_runt_run_sidecar_opens_the_runtimes_page(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    import pexpect

    daemon.wait_pool("uv", 1)
    seen = tmp_path / "browser-saw"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {seen}\n")
    browser.chmod(0o755)
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        str(BIN / "runt"), ["run", "--sidecar", "--socket", str(daemon.socket)],
        env={**env, "BROWSER": str(browser)}, encoding="utf-8", timeout=90, dimensions=(40, 120),
    )  # fmt: skip
    try:
        child.expect(r"started runtime (\w+)")
        runtime_id = child.match.group(1)
        child.expect("sidecar opened in the browser")
        child.expect(r"In \[1\]: ")
        final, html = await follow(seen.read_text())
        assert final == f"/sidecar/{runtime_id}" and 'data-page="sidecar"' in html
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
