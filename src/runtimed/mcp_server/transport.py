"""Serving the MCP server: stdio for a host that spawns ``runt mcp``, or streamable HTTP on
127.0.0.1 behind a bearer token for hosts that connect to a URL.

The notebooks' sessions live as long as the server; they are closed (the daemon keeps
the rooms for other peers) when it stops.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import anyio

from runtimed.mcp_server.notebooks import Notebooks
from runtimed.mcp_server.patterns import PatternRunner
from runtimed.mcp_server.server import build_server

HOST = "127.0.0.1"
DEFAULT_PORT = 39218
TOKEN_ENV = "RUNTIMED_MCP_TOKEN"
MCP_PATH = "/mcp"

Scope = dict[str, Any]
ASGIApp = Any


class BearerAuth:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"www-authenticate", b'Bearer realm="runt mcp"'),
                        ],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"missing or wrong bearer token (see runt mcp --http)\n",
                    }
                )
                return
        await self.app(scope, receive, send)


def serve(
    socket_path: str | Path | None = None,
    http: bool = False,
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> None:
    """Run until stdin closes (stdio) or the process is stopped (HTTP)."""
    if http:
        anyio.run(_serve_http, socket_path, port, token)
    else:
        anyio.run(_serve_stdio, socket_path)


async def _serve_stdio(socket_path: str | Path | None) -> None:
    async with PatternRunner() as patterns, Notebooks(socket_path) as notebooks:
        await build_server(notebooks, patterns).run_stdio_async()


async def _serve_http(socket_path: str | Path | None, port: int, token: str | None) -> None:
    import uvicorn

    token = token or os.environ.get(TOKEN_ENV) or None
    generated = token is None
    token = token or secrets.token_urlsafe(32)
    async with PatternRunner() as patterns, Notebooks(socket_path) as notebooks:
        app = build_server(notebooks, patterns).streamable_http_app(
            streamable_http_path=MCP_PATH, host=HOST
        )
        config = uvicorn.Config(
            BearerAuth(app, token), host=HOST, port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        url = f"http://{HOST}:{port}{MCP_PATH}"
        shown = token if generated else f"${TOKEN_ENV}"
        print(
            f"runt mcp: streamable HTTP at {url}\n  send the header  Authorization: Bearer {shown}",
            file=sys.stderr,
            flush=True,
        )
        await server.serve()
