"""The HTTP server's middlewares, outermost first: CORS headers for allowed origins, JSON
errors, the connection cap and body size, the Host check (DNS rebinding), the Origin
check (cross-site requests, websockets, preflights), then the token (Bearer header or
login cookie) with failures rate-limited.

Handlers behind them never check auth. Nothing here logs a header, a query string or a
cookie: tokens never reach the log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec
from aiohttp import hdrs, web

from runtimed.daemon.http.http_errors import json_error
from runtimed.daemon.http.tokens import COOKIE_NAME, TOKEN_BYTES, HttpTokens
from runtimed.errors import RuntimedError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: RuntimedError codes that are not a plain 400.
STATUS_OF_CODE = {"not_found": 404, "too_many_connections": 503}
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Query keys that look like a credential: refused, so no token sits in a URL or a log.
TOKEN_QUERY_KEYS = frozenset({"token", "access_token", "api_key"})


class FailureLimiter:
    """Failed auth attempts per client address: past ``max_failures`` within
    ``window_secs`` the address gets 429 until its oldest failure leaves the window."""

    def __init__(self, max_failures: int = 20, window_secs: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_secs = window_secs
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        failures = self._recent(client)
        if failures is None or len(failures) < self.max_failures:
            return None
        return max(0.0, failures[0] + self.window_secs - time.monotonic())

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:  # many addresses: keep only the live ones
            for key in list(self._failures):
                self._recent(key)
        self._failures.setdefault(client, deque()).append(time.monotonic())

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = time.monotonic() - self.window_secs
        while failures and failures[0] < horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures


@dataclass(frozen=True)
class GuardConfig:
    """What the guard checks against; ``hosts`` and ``origins`` are read per request
    (the port is known only once bound, origins are a live setting)."""

    tokens: HttpTokens
    #: Host header values naming this server by a DNS name (IP literals and localhost
    #: always pass: DNS rebinding cannot produce them).
    hosts: Callable[[], frozenset[str]]
    #: Origins allowed besides the same origin (setting http.allowed_origins).
    origins: Callable[[], frozenset[str]]
    #: http or https: the same origin is this scheme and the request's Host.
    scheme: str
    max_connections: int
    max_body_bytes: int


class RequestGuard:
    """The middlewares of one HttpServer, and the requests in flight (for close)."""

    def __init__(self, config: GuardConfig, limiter: FailureLimiter | None = None) -> None:
        self.config = config
        self.limiter = limiter or FailureLimiter()
        self.public_routes: set[web.AbstractRoute] = set()
        self.in_flight: set[asyncio.Task[object]] = set()

    def middlewares(self) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
        return [self._cors, self._errors, self._limits, self._host, self._origin, self._auth]

    @web.middleware
    async def _cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """CORS headers on every answer (errors too) to an origin of http.allowed_origins:
        the token goes as a header, so no credentials are allowed."""
        response = await handler(request)
        origin = request.headers.get(hdrs.ORIGIN)
        allowed = origin is not None and origin.lower() in self.config.origins()
        if allowed and origin is not None and not response.prepared:
            response.headers.update(_cors_headers(origin, preflight=False))
        return response

    # --- errors -------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return json_error(exc.status, _code_of_status(exc.status), _text_of(exc))
        except RuntimedError as exc:
            return json_error(STATUS_OF_CODE.get(exc.code, 400), exc.code, exc.message)
        except (json.JSONDecodeError, msgspec.DecodeError) as exc:  # a body that is no JSON
            return json_error(400, "bad_json", f"the request body is not valid JSON: {exc}")
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            return json_error(500, "internal", "internal error; see the daemon's log")

    # --- limits -------------------------------------------------------------------------

    @web.middleware
    async def _limits(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if len(self.in_flight) >= self.config.max_connections:
            log.warning("refusing an HTTP request: %d are open", len(self.in_flight))
            message = f"the daemon has {len(self.in_flight)} connections open; retry later"
            return json_error(503, "too_many_connections", message, {"Retry-After": "1"})
        length = request.content_length
        if length is not None and length > self.config.max_body_bytes:
            return _too_large(self.config.max_body_bytes)
        task = asyncio.current_task()
        assert task is not None
        self.in_flight.add(task)
        try:
            return await handler(request)
        finally:
            self.in_flight.discard(task)

    # --- Host and Origin ----------------------------------------------------------------

    @web.middleware
    async def _host(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST, "").lower()
        if host not in self.config.hosts() and not _rebinding_proof(_host_name(host)):
            return json_error(421, "wrong_host", "this server does not answer to that Host")
        return await handler(request)

    @web.middleware
    async def _origin(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Browsers' cross-origin requests: refused unless the origin is allowed; the
        CORS preflights of allowed ones answered (no token: browsers send none)."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return await handler(request)
        allowed = self._origin_allowed(origin.lower(), request)
        preflight = request.method == "OPTIONS" and (
            hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        )
        guarded = preflight or request.method in STATE_CHANGING or _is_upgrade(request)
        if guarded and not allowed:
            return json_error(
                403,
                "forbidden_origin",
                f"requests from {origin[:100]} are not allowed (setting http.allowed_origins)",
            )
        if preflight:
            return web.Response(status=204, headers=_cors_headers(origin, preflight=True))
        return await handler(request)

    def _origin_allowed(self, origin: str, request: web.Request) -> bool:
        """The same origin (this scheme, the Host already checked) or a configured one."""
        host = request.headers.get(hdrs.HOST, "").lower()
        return origin == f"{self.config.scheme}://{host}" or origin in self.config.origins()

    # --- the token ----------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token_in_query(request):
            return json_error(
                401, "token_in_query", "send the token as 'Authorization: Bearer', not in a URL"
            )
        if request.match_info.route in self.public_routes:
            return await handler(request)
        client = request.remote or "?"
        retry = self.limiter.retry_after(client)
        if retry is not None:
            return _rate_limited(retry)
        if not self._authenticated(request):
            self.limiter.failed(client)
            return json_error(
                401,
                "unauthorized",
                "a token is required: 'Authorization: Bearer <token>' (the token is in the "
                "daemon's cache dir, file http-token)",
                {hdrs.WWW_AUTHENTICATE: 'Bearer realm="runtimed"'},
            )
        return await handler(request)

    def _authenticated(self, request: web.Request) -> bool:
        tokens = self.config.tokens
        scheme, _, credential = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() == "bearer" and tokens.check(credential.strip()):
            return True
        cookie = request.cookies.get(COOKIE_NAME)
        return cookie is not None and tokens.check_cookie(cookie)

    def _token_in_query(self, request: web.Request) -> bool:
        query = request.query
        if TOKEN_QUERY_KEYS & {key.lower() for key in query}:
            return True
        return any(
            len(value) == 2 * TOKEN_BYTES and self.config.tokens.check(value)
            for value in query.values()
        )

    def failed(self, request: web.Request) -> None:
        """Count a failed attempt of ``request``'s client (a login link that did not work)."""
        self.limiter.failed(request.remote or "?")

    def login_refused(self, request: web.Request) -> web.Response | None:
        """The 429 to answer a login attempt from a client over budget, if any."""
        retry = self.limiter.retry_after(request.remote or "?")
        return _rate_limited(retry) if retry is not None else None


def allowed_hosts(names: Iterable[str], port: int, default_port: int) -> frozenset[str]:
    """Host header values naming ``names`` on ``port`` (bare names on the default port)."""
    hosts = {f"{name}:{port}".lower() for name in names}
    if port == default_port:
        hosts |= {name.lower() for name in names}
    return frozenset(hosts)


def origin_host(origin: str) -> str | None:
    """``https://nb.example.com:8443`` -> ``nb.example.com:8443`` (None if not a URL)."""
    parts = urlsplit(origin)
    return parts.netloc.lower() or None if parts.scheme in ("http", "https") else None


def _rebinding_proof(name: str) -> bool:
    """IP literals and localhost, on any port: no DNS rebinding yields them (the page
    would have to come from that address already), and an SSH port forward
    (``ssh -L 8000:127.0.0.1:PORT``) then works whatever its local port."""
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
    except ValueError:
        return False
    return True


def _host_name(host: str) -> str:
    """``localhost:8000`` -> ``localhost``; ``[::1]:8000`` -> ``[::1]``."""
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and not name.endswith(":") else host


def _cors_headers(origin: str, preflight: bool) -> dict[str, str]:
    headers: dict[str, str] = {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin, hdrs.VARY: "Origin"}
    if preflight:
        headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "GET, POST, PUT, PATCH, DELETE"
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = "Authorization, Content-Type"
        headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
    return headers


def _is_upgrade(request: web.Request) -> bool:
    return "upgrade" in request.headers.get(hdrs.CONNECTION, "").lower()


def _too_large(limit: int) -> web.Response:
    return json_error(413, "too_large", f"the request body is over {limit} bytes")


def _rate_limited(retry_after: float) -> web.Response:
    return json_error(
        429,
        "rate_limited",
        "too many failed attempts; retry later",
        {"Retry-After": str(max(1, round(retry_after)))},
    )


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _code_of_status(status: int) -> str:
    return _CODES.get(status, "internal" if status >= 500 else "error")


def _text_of(exc: web.HTTPException) -> str:
    text = exc.text or ""
    # aiohttp's default bodies are "404: Not Found"; the message needs no status.
    return text.partition(": ")[2] if text.startswith(f"{exc.status}: ") else text or exc.reason
