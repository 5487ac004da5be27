"""Client ends of ``/ws``: an asyncio MessageConnection, or blocking frames (websockets).

Imported only when a client is given a URL, so ``import runtimed`` stays light.
"""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.parse
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.sync.client import ClientConnection as SyncClientConnection
from websockets.sync.client import connect as connect_sync

from runtimed.errors import DaemonNotRunningError, ProtocolError, RuntimedError
from runtimed.transport.messages import MessageConnection

OPEN_TIMEOUT_SECS = 30.0
WHAT_TO_DO = {
    401: "pass token= (runt --token-file) or set RUNTIMED_TOKEN",
    403: "the Origin is not allowed (setting http.allowed_origins)",
    421: "use the daemon's own address (its Host check refused this one)",
    429: "too many failed attempts; wait a minute and retry with the right token",
    503: "the daemon is at its connection limit; retry later",
}


def ws_url(url: str, path: str = "/ws") -> str:
    """``http(s)://host:port`` -> ``ws(s)://host:port/ws``."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise RuntimedError(
            f"not a daemon URL: {url!r} (expected http://host:port or https://host:port)",
            "invalid_url",
        )
    base = parts.path.rstrip("/")
    return urllib.parse.urlunsplit((scheme, parts.netloc, base + path, "", ""))


def _options(token: str | None, max_frame: int, timeout: float | None) -> dict[str, Any]:
    return {
        "additional_headers": {"Authorization": f"Bearer {token}"} if token else {},
        "compression": None,  # frames are small or already compact; latency first
        "max_size": max_frame,
        "open_timeout": timeout or OPEN_TIMEOUT_SECS,
        "ping_interval": None,  # like the socket: no keepalive traffic
        "user_agent_header": "runtimed",
        "proxy": None,  # the daemon is reached directly (or through an SSH forward)
    }


def refused(url: str, exc: BaseException) -> RuntimedError:
    """One line that says why the daemon at ``url`` refused, and what to do."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        message = ""
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = json.loads(exc.response.body or b"{}")["error"]["message"]
        if status == 401:
            return RuntimedError(
                f"the daemon at {url} refused the token (401); {WHAT_TO_DO[401]}", "unauthorized"
            )
        hint = WHAT_TO_DO.get(status, "")
        detail = "; ".join(part for part in (message, hint) if part)
        return RuntimedError(f"the daemon at {url} refused the connection ({status}): {detail}")
    if isinstance(exc, InvalidURI):
        return RuntimedError(f"not a daemon URL: {url!r}", "invalid_url")
    return ProtocolError(f"the server at {url} is not a runtimed daemon: {exc}", "bad_upgrade")


def _not_running(url: str) -> DaemonNotRunningError:
    return DaemonNotRunningError(url)


class WebsocketsMessageSocket:
    """A MessageSocket over a websockets asyncio ClientConnection."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def receive(self) -> bytes | None:
        try:
            data = await self._ws.recv()
        except ConnectionClosedOK:
            return None
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"the websocket closed: {exc}") from None
        if isinstance(data, str):
            raise ProtocolError("the daemon sent a text message; frames are binary")
        return data

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"the websocket closed: {exc}") from None

    def buffered(self) -> int:
        return self._ws.transport.get_write_buffer_size()

    def closing(self) -> bool:
        return self._ws.transport.is_closing()

    def abort(self) -> None:
        self._ws.transport.abort()

    async def close(self) -> None:
        await self._ws.close()


async def connect_ws(
    url: str, token: str | None, max_frame: int, timeout: float | None = None
) -> MessageConnection:
    """An asyncio frame connection to the daemon at ``url`` (its ``/ws``)."""
    try:
        ws = await connect_async(ws_url(url), **_options(token, max_frame, timeout))
    except (InvalidHandshake, InvalidURI) as exc:
        raise refused(url, exc) from None
    except (ConnectionRefusedError, socket.gaierror):
        raise _not_running(url) from None
    return MessageConnection(WebsocketsMessageSocket(ws), max_frame)


class BlockingWebSocket:
    """Frames over a blocking websocket (the blocking clients' ``BlockingFrameSocket``)."""

    def __init__(self, ws: SyncClientConnection) -> None:
        self._ws = ws
        self._timeout: float | None = None

    @classmethod
    def connect(
        cls, url: str, token: str | None, max_frame: int, timeout: float | None
    ) -> BlockingWebSocket:
        try:
            made = connect_sync(ws_url(url), **_options(token, max_frame, timeout))
        except (InvalidHandshake, InvalidURI) as exc:
            raise refused(url, exc) from None
        except (ConnectionRefusedError, socket.gaierror):
            raise _not_running(url) from None
        assert isinstance(made, SyncClientConnection)
        # Entered (as `with connect(...)` would) since websockets 17.1 warns otherwise;
        # close() ends it.
        conn = cls(made.__enter__())
        conn.settimeout(timeout)
        return conn

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def write_frame(self, payload: bytes) -> None:
        try:
            self._ws.send(payload)
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"the websocket closed: {exc}") from None

    def read_frame(self) -> bytes | None:
        try:
            data = self._ws.recv(timeout=self._timeout)
        except ConnectionClosedOK:
            return None
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"the websocket closed: {exc}") from None
        if isinstance(data, str):
            raise ProtocolError("the daemon sent a text message; frames are binary")
        return data

    def close(self) -> None:
        self._ws.close()
