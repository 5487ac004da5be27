"""In process: HttpServer's middlewares on a real loopback port: the token, Host and
Origin checks, rate limiting, limits, the JSON errors and the one-time login link."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from runtimed.daemon.http.http_server import HttpServer
from runtimed.daemon.http.listen import HttpListen
from runtimed.daemon.http.security import FailureLimiter
from runtimed.daemon.http.tokens import COOKIE_NAME, HttpTokens, mint_login_code, token_file
from runtimed.errors import RuntimedError


@dataclass
class Served:
    server: HttpServer
    token: str
    release: asyncio.Event

    @property
    def url(self) -> str:
        assert self.server.url is not None
        return self.server.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def routes(release: asyncio.Event) -> list[web.RouteDef]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response({"method": request.method, "body": body})

    async def missing(request: web.Request) -> web.Response:
        raise RuntimedError("no runtime abc", "not_found")

    async def invalid(request: web.Request) -> web.Response:
        raise RuntimedError("bad kernel name", "invalid_kernel")

    async def boom(request: web.Request) -> web.Response:
        raise ValueError("secret detail")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            await socket.send_bytes(message.data)
        return socket

    return [
        web.get("/echo", echo),
        web.post("/echo", echo),
        web.get("/missing", missing),
        web.get("/invalid", invalid),
        web.get("/boom", boom),
        web.get("/slow", slow),
        web.get("/ws", ws),
    ]


async def serve(
    tmp_path: Path, listen: HttpListen | None = None, origins: list[str] | None = None
) -> Served:
    tokens = HttpTokens.load_or_create(token_file(tmp_path))
    release = asyncio.Event()
    server = HttpServer(
        listen or HttpListen(),
        tokens,
        lambda: origins or [],
        max_connections=3,
        max_body_bytes=1024,
    )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    server.add_routes([web.get("/api/health", health)], public=True)
    server.add_routes(routes(release))
    await server.start()
    return Served(server, token_file(tmp_path).read_text().strip(), release)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    s = await serve(tmp_path, origins=["https://nb.example.com"])
    yield s
    s.release.set()
    await s.server.close()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def get(
    client: aiohttp.ClientSession, url: str, **kwargs: object
) -> tuple[int, dict[str, object]]:
    async with client.get(url, allow_redirects=False, **kwargs) as r:  # type: ignore[arg-type]
        return r.status, await r.json()


async def test_health_is_public_and_the_rest_needs_the_token(
    served: Served, client: aiohttp.ClientSession
) -> None:
    assert await get(client, served.url + "/api/health") == (200, {"ok": True})
    status, body = await get(client, served.url + "/echo")
    assert status == 401 and body["error"]["code"] == "unauthorized"  # type: ignore[index]
    status, _ = await get(client, served.url + "/echo", headers={"Authorization": "Bearer x"})
    assert status == 401
    status, _ = await get(client, served.url + "/echo", headers={"Authorization": served.token})
    assert status == 401, "the scheme is Bearer"
    assert (await get(client, served.url + "/echo", headers=served.auth))[0] == 200
    # Unknown paths do not tell an anonymous client which routes exist.
    assert (await get(client, served.url + "/nope"))[0] == 401
    status, body = await get(client, served.url + "/nope", headers=served.auth)
    assert status == 404 and body == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_a_token_in_the_query_is_refused(
    served: Served, client: aiohttp.ClientSession
) -> None:
    for query in (f"token={served.token}", f"access_token={served.token}", f"q={served.token}"):
        status, body = await get(client, f"{served.url}/echo?{query}", headers=served.auth)
        assert (status, body["error"]["code"]) == (401, "token_in_query")  # type: ignore[index]


async def test_foreign_host_gets_421(served: Served, client: aiohttp.ClientSession) -> None:
    port = served.server.port
    for host in ("evil.example.com", f"evil.example.com:{port}", "", "[::1]x:80"):
        status, body = await get(client, served.url + "/api/health", headers={"Host": host})
        assert (status, body["error"]["code"]) == (421, "wrong_host")  # type: ignore[index]
    # IP literals and localhost on any port (no DNS rebinding yields them: an SSH port
    # forward may use another local port), and the hosts of allowed origins.
    for host in (f"localhost:{port}", "127.0.0.1:8000", "[::1]:1", "10.1.2.3", "nb.example.com"):
        assert (await get(client, served.url + "/api/health", headers={"Host": host}))[0] == 200


async def test_state_changing_requests_need_an_allowed_origin(
    served: Served, client: aiohttp.ClientSession
) -> None:
    own = served.url
    for origin, expected in (
        ("https://evil.example.com", 403),
        ("null", 403),
        (own, 200),
        ("https://nb.example.com", 200),
    ):
        headers = {**served.auth, "Origin": origin}
        async with client.post(served.url + "/echo", json={"a": 1}, headers=headers) as r:
            assert r.status == expected, origin
    # Same origin is the request's own Host: through a forward on another port too; another
    # local port's page is another origin.
    for host, origin, expected in (
        ("localhost:8000", "http://localhost:8000", 200),
        ("localhost:8000", "http://localhost:3000", 403),
        ("localhost:8000", "https://localhost:8000", 403),
    ):
        headers = {**served.auth, "Host": host, "Origin": origin}
        async with client.post(served.url + "/echo", json={}, headers=headers) as r:
            assert r.status == expected, (host, origin)
    # A read with a foreign Origin is allowed (it cannot read the answer cross-site).
    headers = {**served.auth, "Origin": "https://evil.example.com"}
    assert (await get(client, served.url + "/echo", headers=headers))[0] == 200


async def test_allowed_origins_get_cors_headers(
    served: Served, client: aiohttp.ClientSession
) -> None:
    allowed = "https://nb.example.com"
    preflight = {"Origin": allowed, "Access-Control-Request-Method": "POST"}
    async with client.options(served.url + "/echo", headers=preflight) as r:
        assert r.status == 204  # no token: browsers send none on a preflight
        assert r.headers["Access-Control-Allow-Origin"] == allowed
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    foreign = {**preflight, "Origin": "https://evil.example.com"}
    async with client.options(served.url + "/echo", headers=foreign) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    async with client.post(
        served.url + "/echo", json={}, headers={**served.auth, "Origin": allowed}
    ) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == allowed
    async with client.get(served.url + "/echo", headers={"Origin": allowed}) as r:
        assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == allowed
    async with client.get(served.url + "/echo", headers=served.auth) as r:
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_websocket_upgrades_need_an_allowed_origin(
    served: Served, client: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(
            served.url + "/ws", headers={**served.auth, "Origin": "https://evil.example.com"}
        )
    assert info.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(served.url + "/ws")
    assert info.value.status == 401
    async with client.ws_connect(
        served.url + "/ws", headers={**served.auth, "Origin": served.url}
    ) as ws:
        await ws.send_bytes(b"\x01\x02")
        assert (await ws.receive_bytes(timeout=5)) == b"\x01\x02"


async def test_failures_are_rate_limited(served: Served, client: aiohttp.ClientSession) -> None:
    served.server.guard.limiter = FailureLimiter(max_failures=3, window_secs=60)
    for _ in range(3):
        assert (await get(client, served.url + "/echo"))[0] == 401
    async with client.get(served.url + "/echo", headers=served.auth) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        assert (await r.json())["error"]["code"] == "rate_limited"
    # Public routes stay up.
    assert (await get(client, served.url + "/api/health"))[0] == 200


async def test_errors_are_json(served: Served, client: aiohttp.ClientSession) -> None:
    h = served.auth
    assert await get(client, served.url + "/missing", headers=h) == (
        404,
        {"error": {"code": "not_found", "message": "no runtime abc"}},
    )
    assert await get(client, served.url + "/invalid", headers=h) == (
        400,
        {"error": {"code": "invalid_kernel", "message": "bad kernel name"}},
    )
    status, body = await get(client, served.url + "/boom", headers=h)
    assert status == 500 and body["error"]["code"] == "internal"  # type: ignore[index]
    assert "secret" not in str(body)
    async with client.post(served.url + "/echo", data=b"{not json", headers=h) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "bad_json"
    async with client.put(served.url + "/echo", headers=h) as r:
        assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"


async def test_oversize_bodies_get_413(served: Served, client: aiohttp.ClientSession) -> None:
    async with client.post(served.url + "/echo", data=b"x" * 2048, headers=served.auth) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while read
        for _ in range(4):
            yield b'"' + b"x" * 500 + b'"'

    async with client.post(served.url + "/echo", data=chunks(), headers=served.auth) as r:
        assert r.status == 413


async def test_past_the_connection_cap_503(served: Served, client: aiohttp.ClientSession) -> None:
    slow = [asyncio.create_task(get(client, served.url + "/slow", headers=served.auth))]
    slow += [asyncio.create_task(get(client, served.url + "/slow", headers=served.auth))]
    slow += [asyncio.create_task(get(client, served.url + "/slow", headers=served.auth))]
    deadline = asyncio.get_running_loop().time() + 10
    while len(served.server.guard.in_flight) < 3:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    status, body = await get(client, served.url + "/echo", headers=served.auth)
    assert (status, body["error"]["code"]) == (503, "too_many_connections")  # type: ignore[index]
    served.release.set()
    assert [s for s, _ in await asyncio.gather(*slow)] == [200, 200, 200]
    assert (await get(client, served.url + "/echo", headers=served.auth))[0] == 200


async def test_close_ends_open_websockets(tmp_path: Path) -> None:
    s = await serve(tmp_path)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(s.url + "/ws", headers=s.auth)
        await asyncio.wait_for(s.server.close(), 5)
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert s.server.url is None


async def test_a_login_link_sets_a_cookie_once(
    served: Served, client: aiohttp.ClientSession
) -> None:
    code = mint_login_code(served.token)
    async with client.get(f"{served.url}/login?code={code}&next=/echo", allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/echo"
        cookie = r.cookies[COOKIE_NAME]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert served.token not in r.headers.get("Set-Cookie", "")
    assert (await get(client, served.url + "/echo"))[0] == 200
    async with client.get(f"{served.url}/login?code={code}", allow_redirects=False) as r:
        assert r.status == 403 and (await r.json())["error"]["code"] == "login_expired"


async def test_login_refuses_expired_links_and_foreign_redirects(
    served: Served, client: aiohttp.ClientSession
) -> None:
    expired = mint_login_code(served.token, ttl_secs=-1)
    assert (await get(client, f"{served.url}/login?code={expired}"))[0] == 403
    assert (await get(client, served.url + "/echo"))[0] == 401
    for target in ("https://evil.example.com/", "//evil.example.com", "/\\evil"):
        code = mint_login_code(served.token)
        async with client.get(
            f"{served.url}/login", params={"code": code, "next": target}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/"


async def test_tls_listen(tmp_path: Path) -> None:
    import trustme

    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    s = await serve(tmp_path, HttpListen("127.0.0.1", 0, str(cert_file), str(key_file)))
    try:
        assert s.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context()
        authority.configure_trust(context)
        async with aiohttp.ClientSession() as session:
            async with session.get(s.url + "/echo", headers=s.auth, ssl=context) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(s.url + "/echo", headers=s.auth)  # untrusted CA
    finally:
        await s.server.close()
