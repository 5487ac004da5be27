"""`runt open [FILE.ipynb | --new]`: a notebook in the browser, on the page the daemon
serves (docs/web.md); and the sidecar link of a console runtime (`runt run --sidecar`,
``runtimed.sidecar(runtime_id)``).

Each link is a one-time login link (``/login?code=...&next=/notebooks/...``) minted from
the daemon's token file, so the token itself never goes in a URL or the browser's
history. The daemon is started if none runs, like every other command.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from runtimed.cli.common import echo, fail, reporting_errors
from runtimed.errors import RuntimedError

#: The HTTP server starts a moment after the socket answers (a fresh daemon).
HTTP_WAIT_SECS = 30.0


@dataclass(frozen=True)
class WebDaemon:
    """Where the daemon's HTTP server is, and its token."""

    url: str
    token: str

    def login_link(self, next_path: str) -> str:
        """A link valid once, for 60 s: it logs a browser in and lands on ``next_path``."""
        from runtimed.daemon.http.tokens import mint_login_code

        code = mint_login_code(self.token)
        return f"{self.url}/login?code={code}&next={quote(next_path, safe='/')}"

    def call(self, method: str, path: str, body: object = None) -> dict[str, object]:
        """A REST call with the token; a JSON error becomes a RuntimedError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            error = _error_of(exc.read())
            raise RuntimedError(error[1] or f"HTTP {exc.code}", error[0] or "http_error") from None
        except urllib.error.URLError as exc:
            raise RuntimedError(
                f"cannot reach the daemon's HTTP server at {self.url}: {exc.reason}", "http_off"
            ) from None


def find_web_daemon(socket: str | None = None) -> WebDaemon:
    """The daemon's HTTP server (started if no daemon runs): a local daemon's token comes
    from its cache dir; a remote one (``runt --url``) from ``--token-file`` or the env."""
    from runtimed.client import DaemonClient
    from runtimed.client.daemon_address import daemon_address

    address = daemon_address(socket)
    if address.remote:
        assert address.url is not None
        token = address.resolve_token()
        if token is None:
            raise RuntimedError(
                "no token for the daemon at that URL: give --token-file", "no_token"
            )
        return WebDaemon(address.url.rstrip("/"), token)
    from runtimed.daemon.http.tokens import read_token, token_file

    deadline = time.monotonic() + HTTP_WAIT_SECS
    with DaemonClient(socket) as client:
        while (info := client.daemon_info()).http_url is None:
            if time.monotonic() > deadline:
                raise RuntimedError(
                    "the daemon's HTTP server is off (runtimed run --http-listen off?)", "http_off"
                )
            time.sleep(0.05)
    token = read_token(token_file(Path(info.cache_dir)))
    if token is None:
        raise RuntimedError(f"no token in {info.cache_dir}; is this the daemon's user?", "no_token")
    return WebDaemon(info.http_url, token)


def notebook_link(web: WebDaemon, path: str | None) -> str:
    """Open ``path`` (an .ipynb, made if missing) or a new untitled notebook in the
    daemon; the login link to its page."""
    body = {} if path is None else {"path": os.path.abspath(os.path.expanduser(path))}
    opened = web.call("POST", "/api/notebooks", body)
    return web.login_link("/notebooks/" + quote(str(opened["notebook_id"]), safe=""))


def sidecar(runtime_id: str, open_browser: bool = True, socket: str | None = None) -> str:
    """The sidecar page of a runtime (its rich outputs as they arrive, next to a
    console): a one-time login link, opened in the default browser unless
    ``open_browser`` is False. ``runtime_id`` may be a unique prefix."""
    web = find_web_daemon(socket)
    runtime = web.call("GET", "/api/runtimes/" + quote(runtime_id, safe=""))["runtime"]
    assert isinstance(runtime, dict)
    link = web.login_link("/sidecar/" + quote(str(runtime["runtime_id"]), safe=""))
    if open_browser:
        _browse(link)
    return link


def open_sidecar(runtime_id: str, socket: str | None = None) -> str:
    """For `runt run --sidecar`: open the sidecar, or say why not (a line to print);
    the console goes on either way."""
    try:
        link = sidecar(runtime_id, open_browser=False, socket=socket)
    except RuntimedError as exc:
        return f"no sidecar: {exc.message}"
    if _browse(link):
        return "sidecar opened in the browser"
    return f"sidecar (open within 60 s): {link}"


def open_notebook(path: str | None, new: bool, no_browser: bool, socket: str | None) -> None:
    """Open a notebook in the browser, on the page the daemon serves.

    FILE.ipynb is created if missing; --new makes an untitled notebook. The link logs the
    browser in once (valid 60 s); --no-browser prints it instead."""
    if path is not None and new:
        fail("give a FILE.ipynb or --new, not both")
    if path is None and not new:
        fail("give a FILE.ipynb to open, or --new for a new notebook")
    if path is not None and os.path.isdir(path):
        fail(f"{path} is a directory; give a .ipynb file")
    with reporting_errors():
        link = notebook_link(find_web_daemon(socket), path)
    if no_browser:
        echo(link)
    elif _browse(link):
        echo(f"opened {path or 'a new notebook'} in the browser")
    else:
        echo(f"no browser found; open this link within 60 s:\n{link}")


def _browse(link: str) -> bool:
    import webbrowser

    try:
        return webbrowser.open(link)
    except webbrowser.Error:
        return False


def _error_of(raw: bytes) -> tuple[str | None, str | None]:
    try:
        error = json.loads(raw)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return None, None
