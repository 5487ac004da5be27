"""Against a real daemon: its HTTP server's address, the auth matrix (no token, wrong
token, token in the query, foreign Origin, foreign Host, used or expired login link),
token rotation without a restart, `--http-listen off`, and TLS with trustme certificates."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from helpers import DaemonProcess, wait_until
from runtimed.daemon.http.tokens import mint_login_code

pytestmark = pytest.mark.daemon
BIN = Path(sys.executable).parent


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, object]

    @property
    def code(self) -> object:
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None


def request(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Reply:
    """One request with exactly these headers (Host included, when given)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=10, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = dict(headers or {})
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.putrequest(method, target, skip_host="Host" in headers)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        raw = response.read()
        body = json.loads(raw) if raw else {}
        return Reply(response.status, dict(response.getheaders()), body)
    finally:
        conn.close()


def http_url(d: DaemonProcess) -> str:
    """The daemon's HTTP URL once its warm-up started the server."""

    def read() -> str | None:
        info = json.loads((d.cache_dir / "daemon.json").read_text())
        return info.get("http_url")  # type: ignore[no-any-return]

    return str(wait_until(read, 30, what="the HTTP server in daemon.json"))


def runtimed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runtimed"), *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def served(daemon_factory: Callable[..., DaemonProcess]) -> tuple[DaemonProcess, str, str]:
    d = daemon_factory("--uv-pool-size", "0")
    url = http_url(d)
    return d, url, (d.cache_dir / "http-token").read_text().strip()


def test_status_shows_the_url_and_the_token_file_is_private(
    served: tuple[DaemonProcess, str, str],
) -> None:
    d, url, token = served
    assert url.startswith("http://127.0.0.1:")
    assert stat.S_IMODE((d.cache_dir / "http-token").stat().st_mode) == 0o600
    assert len(token) == 64
    r = runtimed("status", "--socket", str(d.socket_path), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["http_url"] == url and out["daemon"]["http_url"] == url
    assert f"http:      {url}" in runtimed("status", "--socket", str(d.socket_path)).stdout


def test_the_auth_matrix(served: tuple[DaemonProcess, str, str]) -> None:
    d, url, token = served
    bearer = {"Authorization": f"Bearer {token}"}
    health = request(url + "/api/health")
    assert (health.status, health.body) == (200, {"ok": True})
    ok = request(url + "/api/status", headers=bearer)
    assert ok.status == 200 and ok.body["version"] and "pools" in ok.body["status"]  # type: ignore[operator]

    assert request(url + "/api/status").code == "unauthorized"
    wrong = request(url + "/api/status", headers={"Authorization": "Bearer " + "0" * 64})
    assert (wrong.status, wrong.code) == (401, "unauthorized")
    in_query = request(f"{url}/api/status?token={token}")
    assert (in_query.status, in_query.code) == (401, "token_in_query")
    port = urlsplit(url).port
    host = request(url + "/api/status", headers={**bearer, "Host": f"rebound.example:{port}"})
    assert (host.status, host.code) == (421, "wrong_host")
    assert (
        request(url + "/api/status", headers={**bearer, "Host": f"localhost:{port}"}).status == 200
    )
    origin = request(
        url + "/api/status",
        "POST",
        {**bearer, "Origin": "https://evil.example", "Content-Length": "0"},
    )
    assert (origin.status, origin.code) == (403, "forbidden_origin")
    upgrade = request(
        url + "/api/status",
        headers={
            **bearer,
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
        },
    )
    assert upgrade.status == 403
    # Nothing the clients sent reached the log.
    log = (d.cache_dir / "runtimed.log").read_text() + d.log_path.read_text()
    assert token not in log


def test_login_link_once_then_expired(served: tuple[DaemonProcess, str, str]) -> None:
    d, url, token = served
    r = runtimed("token", "login-url", "--socket", str(d.socket_path))
    assert r.returncode == 0, r.stderr
    link = r.stdout.strip()
    assert link.startswith(f"{url}/login?code=") and token not in link
    first = request(link)
    assert first.status == 303
    cookie = first.headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in first.headers["Set-Cookie"] and token not in cookie
    assert request(url + "/api/status", headers={"Cookie": cookie}).status == 200
    again = request(link)
    assert (again.status, again.code) == (403, "login_expired")
    expired = request(f"{url}/login?code={mint_login_code(token, ttl_secs=-1)}")
    assert (expired.status, expired.code) == (403, "login_expired")


def test_rotation_needs_no_restart(served: tuple[DaemonProcess, str, str]) -> None:
    d, url, old = served
    r = runtimed("token", "rotate", "--cache-dir", str(d.cache_dir))
    assert r.returncode == 0, r.stderr
    new = (d.cache_dir / "http-token").read_text().strip()
    assert new != old
    assert request(url + "/api/status", headers={"Authorization": f"Bearer {old}"}).status == 401
    assert request(url + "/api/status", headers={"Authorization": f"Bearer {new}"}).status == 200


def test_http_listen_off(daemon_factory: Callable[..., DaemonProcess]) -> None:
    d = daemon_factory("--uv-pool-size", "0", "--http-listen", "off")
    with d.client() as client:
        wait_until(lambda: client.daemon_info().blob_port, 30, what="the warm-up")
        assert client.daemon_info().http_url is None
    assert not (d.cache_dir / "http-token").exists()


def test_non_loopback_without_tls_is_refused(tmp_path: Path) -> None:
    r = runtimed(
        "run", "--cache-dir", str(tmp_path), "--uv-pool-size", "0", "--http-listen", "0.0.0.0:0"
    )
    assert r.returncode == 1 and "without TLS" in r.stderr
    r = runtimed("run", "--cache-dir", str(tmp_path), "--http-listen", "nonsense")
    assert r.returncode == 1 and "HOST:PORT" in r.stderr


def test_insecure_no_tls_warns(daemon_factory: Callable[..., DaemonProcess]) -> None:
    d = daemon_factory("--uv-pool-size", "0", "--http-listen", "0.0.0.0:0", "--insecure-no-tls")
    url = http_url(d)
    token = (d.cache_dir / "http-token").read_text().strip()
    assert request(url + "/api/status", headers={"Authorization": f"Bearer {token}"}).status == 200
    assert "without TLS" in (d.cache_dir / "runtimed.log").read_text()


def test_tls_listen(daemon_factory: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    import trustme

    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    d = daemon_factory(
        "--uv-pool-size",
        "0",
        "--http-listen",
        "127.0.0.1:0",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    url = http_url(d)
    assert url.startswith("https://127.0.0.1:")
    token = (d.cache_dir / "http-token").read_text().strip()
    context = ssl.create_default_context()
    authority.configure_trust(context)
    bearer = {"Authorization": f"Bearer {token}"}
    assert request(url + "/api/status", headers=bearer, context=context).status == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        request(url + "/api/status", headers=bearer, context=ssl.create_default_context())
    assert os.access(cert, os.R_OK)


def test_the_settings_pick_the_address_and_origins(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = tmp_path / "cache"
    (cache / "config").mkdir(parents=True)
    settings = {"http": {"listen": f"127.0.0.1:{port}", "allowed_origins": ["https://nb.example"]}}
    (cache / "config" / "settings.json").write_text(json.dumps(settings))
    d = daemon_factory("--uv-pool-size", "0", cache_dir=cache)
    url = http_url(d)
    assert url == f"http://127.0.0.1:{port}"
    token = (cache / "http-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}", "Origin": "https://nb.example"}
    reply = request(url + "/api/status", "POST", {**headers, "Content-Length": "0"})
    assert reply.status == 405, "past the Origin check: /api/status takes no POST"
    assert reply.headers["Access-Control-Allow-Origin"] == "https://nb.example"
