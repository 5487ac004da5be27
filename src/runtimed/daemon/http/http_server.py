"""``HttpServer``: the daemon's one HTTP server. Routes register before ``start()``;
every route needs the token unless registered ``public`` (health, login).

The REST API's routes and the websocket endpoints come through ``add_routes``; the
middlewares of ``security`` (CORS, JSON errors, limits, Host, Origin, token) stand in
front of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp import hdrs, web

from runtimed.daemon.http.http_errors import json_error
from runtimed.daemon.http.listen import HttpListen, format_host, is_loopback
from runtimed.daemon.http.security import (
    GuardConfig,
    RequestGuard,
    allowed_hosts,
    origin_host,
)
from runtimed.daemon.http.tokens import COOKIE_NAME, HttpTokens, token_file
from runtimed.transport.unix_server import connection_limit

log = logging.getLogger(__name__)

RouteSource = Callable[[], Iterable[web.AbstractRouteDef]]
MAX_BODY_BYTES = 64 * 1024 * 1024
#: How long close() lets requests in flight finish before it cancels them.
CLOSE_GRACE_SECS = 1.0


class HttpServer:
    """One aiohttp server on ``listen``, behind the token of ``tokens``."""

    def __init__(
        self,
        listen: HttpListen,
        tokens: HttpTokens,
        allowed_origins: Callable[[], list[str]],
        *,
        max_connections: int | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        listen.check()
        self.listen = listen
        self.tokens = tokens
        self._allowed_origins = allowed_origins
        self.port: int | None = None
        self.guard = RequestGuard(
            GuardConfig(
                tokens=tokens,
                hosts=self._hosts,
                origins=self._origins,
                scheme=listen.scheme,
                max_connections=max_connections or connection_limit(),
                max_body_bytes=max_body_bytes,
            )
        )
        self.app = web.Application(
            middlewares=self.guard.middlewares(), client_max_size=max_body_bytes
        )
        self._runner: web.AppRunner | None = None
        self.add_routes([web.get("/login", self._login)], public=True)

    def add_routes(self, routes: Iterable[web.AbstractRouteDef], *, public: bool = False) -> None:
        """Before start(). Every route needs the token unless public (health, login)."""
        added = self.app.router.add_routes(list(routes))
        if public:
            self.guard.public_routes.update(added)

    async def start(self) -> None:
        """Bind and serve (OSError if the address is taken)."""
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=CLOSE_GRACE_SECS
        )
        await runner.setup()
        site = web.TCPSite(
            runner, self.listen.host, self.listen.port, ssl_context=self._ssl_context()
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = _bound_port(site) or self.listen.port
        if not self.listen.loopback and not self.listen.tls:
            log.warning(
                "the HTTP server listens on %s without TLS (--insecure-no-tls): the token "
                "travels in clear on the network",
                self.listen.host,
            )
        log.info("HTTP server on %s", self.url)

    async def close(self) -> None:
        """Stop accepting, cancel requests still open (websockets), then clean up."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()
        tasks = list(self.guard.in_flight)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), CLOSE_GRACE_SECS)
        await runner.cleanup()

    @property
    def url(self) -> str | None:
        """``http://127.0.0.1:PORT`` (or https://...) once started, else None."""
        if self.port is None or self._runner is None:
            return None
        return f"{self.listen.scheme}://{format_host(self._url_host())}:{self.port}"

    def login_url(self, code: str) -> str | None:
        return f"{self.url}/login?code={code}" if self.url else None

    # --- what the guard checks against ---------------------------------------------------

    def _url_host(self) -> str:
        if self.listen.wildcard:
            return "::1" if self.listen.host == "::" else "127.0.0.1"
        return self.listen.host

    def _names(self) -> set[str]:
        """DNS names this server answers to (DNS rebinding: no other name; IP literals
        and localhost always pass)."""
        names = {format_host(self.listen.host)}
        if self.listen.wildcard:
            names |= {socket.gethostname(), socket.getfqdn()}
        return names

    def _hosts(self) -> frozenset[str]:
        if self.port is None:
            return frozenset()
        default_port = 443 if self.listen.tls else 80
        hosts = allowed_hosts(self._names(), self.port, default_port)
        extra = {origin_host(origin) for origin in self._allowed_origins()}
        return hosts | {host for host in extra if host}

    def _origins(self) -> frozenset[str]:
        return frozenset(origin.lower().rstrip("/") for origin in self._allowed_origins())

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.listen.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        assert self.listen.tls_cert is not None
        context.load_cert_chain(self.listen.tls_cert, self.listen.tls_key)
        return context

    # --- the one-time login URL ---------------------------------------------------------

    async def _login(self, request: web.Request) -> web.StreamResponse:
        """``GET /login?code=...``: a valid, unused code sets the session cookie and
        redirects to ``next`` (a path on this server, default ``/``)."""
        refused = self.guard.login_refused(request)
        if refused is not None:
            return refused
        if not self.tokens.redeem_login_code(request.query.get("code", "")):
            self.guard.failed(request)
            return json_error(
                403,
                "login_expired",
                "this login link is expired, used or invalid; make a new one with "
                "`runtimed token login-url`",
            )
        response = web.Response(
            status=303, headers={hdrs.LOCATION: _safe_next(request.query.get("next", "/"))}
        )
        response.set_cookie(
            COOKIE_NAME,
            self.tokens.new_cookie(),
            httponly=True,
            samesite="Strict",
            secure=self.listen.tls,
            path="/",
        )
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
        return response


async def start_http_server(
    listen: HttpListen,
    cache_dir: Path,
    allowed_origins: Callable[[], list[str]],
    routes: Iterable[tuple[Iterable[web.AbstractRouteDef], bool]],
) -> HttpServer | None:
    """The daemon's HTTP server with ``routes`` (each with whether it is public), started
    with the token of ``cache_dir`` (made at first start); None, logged, if it cannot."""
    try:
        tokens = HttpTokens.load_or_create(token_file(cache_dir))
        http = HttpServer(listen, tokens, allowed_origins)
        for route_defs, public in routes:
            http.add_routes(route_defs, public=public)
        await http.start()
    except OSError:
        log.exception("the HTTP server could not start; the socket still serves")
        return None
    return http


def _safe_next(target: str) -> str:
    """Only a path on this server: an open redirect would hand the cookie's use away.
    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so a
    slash, a tab, a slash (or a slash and a backslash) would become ``//evil`` (another
    host): no control character, space or backslash passes."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or any(c <= " " or c in "\\\x7f" for c in target)
    ):
        return "/"
    return target


def _bound_port(site: web.TCPSite) -> int | None:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else None


__all__ = ["HttpServer", "RouteSource", "is_loopback", "start_http_server"]
