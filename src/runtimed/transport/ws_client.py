"""Client ends of ``/ws``: an asyncio MessageConnection (aiohttp: its C frame reader
keeps a round trip near the socket's), or blocking frames (websockets' sync client).

Imported only when a client is given a URL, so ``import runtimed`` stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.parse
from typing import Any

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
from runtimed.transport.aiohttp_socket import AiohttpMessageSocket
from runtimed.transport.messages import MessageConnection

OPEN_TIMEOUT_SECS = 30.0
WHAT_TO_DO = {
    401: "pass token= (runt --token-file) or set RUNTIMED_TOKEN",
    403: "the Origin is not allowed (setting http.allowed_origins)",
    404: "no /ws there: is this a runtimed daemon of this version?",
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


def refused_status(url: str, status: int, message: str) -> RuntimedError:
    """One line that says why the daemon at ``url`` refused (HTTP ``status``), and what
    to do."""
    if status == 401:
        return RuntimedError(
            f"the daemon at {url} refused the token (401); {WHAT_TO_DO[401]}", "unauthorized"
        )
    detail = "; ".join(part for part in (message, WHAT_TO_DO.get(status, "")) if part)
    return RuntimedError(f"the daemon at {url} refused the connection ({status}): {detail}")


def refused(url: str, exc: BaseException) -> RuntimedError:
    """``refused_status`` for an exception of the websockets library."""
    if isinstance(exc, InvalidStatus):
        message = ""
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = json.loads(exc.response.body or b"{}")["error"]["message"]
        return refused_status(url, exc.response.status_code, message)
    if isinstance(exc, InvalidURI):
        return RuntimedError(f"not a daemon URL: {url!r}", "invalid_url")
    return ProtocolError(f"the server at {url} is not a runtimed daemon: {exc}", "bad_upgrade")


def _not_running(url: str) -> DaemonNotRunningError:
    return DaemonNotRunningError(url)


async def connect_ws(
    url: str, token: str | None, max_frame: int, timeout: float | None = None
) -> MessageConnection:
    """An asyncio frame connection to the daemon at ``url`` (its ``/ws``)."""
    import aiohttp

    target = ws_url(url)
    session = aiohttp.ClientSession(trust_env=False)  # no proxy: direct, or an SSH forward
    try:
        async with asyncio.timeout(timeout or OPEN_TIMEOUT_SECS):
            ws = await session.ws_connect(
                target,
                headers={"Authorization": f"Bearer {token}"} if token else None,
                max_msg_size=max_frame,
                compress=0,
                autoping=True,
            )
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        raise refused_status(url, exc.status, "") from None
    except aiohttp.ClientConnectorError:
        await session.close()
        raise _not_running(url) from None
    except aiohttp.InvalidURL:
        await session.close()
        raise RuntimedError(f"not a daemon URL: {url!r}", "invalid_url") from None
    except BaseException:
        await session.close()
        raise
    return MessageConnection(AiohttpMessageSocket(ws, after_close=session.close), max_frame)


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
