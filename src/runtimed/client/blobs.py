"""Clients of the blob channel: put blobs, get them back (cached by hash).

``BlobClient`` is blocking, ``AsyncBlobClient`` runs on asyncio; both speak the protocol
described in ``runtimed.daemon.blobs.blob_channel``.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runtimed.client.connection import BlockingConnection, open_async_connection
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.stream import FramedStream

CACHE_BYTES = 256 * 1024 * 1024


class BlobCache:
    """Blobs by hash, least recently used out first. Content never changes, so never stale."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, digest: str) -> bytes | None:
        data = self._items.get(digest)
        if data is not None:
            self._items.move_to_end(digest)
        return data

    def add(self, digest: str, data: bytes) -> None:
        if digest in self._items or len(data) > self.max_bytes:
            return
        self._items[digest] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._size -= len(old)


def _reply(frame: bytes | None) -> dict[str, Any]:
    if frame is None:
        raise ProtocolError("the daemon closed the blob connection")
    reply = json.loads(frame)
    if not isinstance(reply, dict):
        raise ProtocolError(f"unexpected blob reply {reply!r}")
    if not reply.get("ok"):
        raise RuntimedError(str(reply.get("message", "blob request failed")), reply.get("code", ""))
    return reply


def _body(frame: bytes | None, reply: dict[str, Any]) -> bytes:
    if frame is None:
        raise ProtocolError("the daemon closed the blob connection before the blob bytes")
    if len(frame) != reply.get("size"):
        raise ProtocolError("blob size does not match its header")
    return frame


class BlobClient:
    """A blocking blob-channel connection."""

    def __init__(self, socket_path: str | Path | None = None, timeout: float = 60.0) -> None:
        self._conn = BlockingConnection.open(socket_path, "blob", timeout=timeout)
        self.cache = BlobCache()

    def put(self, data: bytes, media_type: str = "application/octet-stream") -> str:
        self._conn.write_frame(json.dumps({"media_type": media_type}).encode())
        self._conn.write_frame(data)
        return str(_reply(self._conn.read_frame())["hash"])

    def get(self, digest: str) -> bytes:
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        self._conn.write_frame(json.dumps({"get": digest}).encode())
        reply = _reply(self._conn.read_frame())
        data = _body(self._conn.read_frame(), reply)
        self.cache.add(digest, data)
        return data

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncBlobClient:
    """An asyncio blob-channel connection, opened on first use and reopened after errors."""

    def __init__(self, socket_path: str | Path | None = None) -> None:
        self.socket_path = socket_path
        self.cache = BlobCache()
        self._stream: FramedStream | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> FramedStream:
        if self._stream is None:
            self._stream, _ = await open_async_connection(self.socket_path, "blob")
        return self._stream

    async def put(self, data: bytes, media_type: str = "application/octet-stream") -> str:
        async with self._lock:
            try:
                stream = await self._connected()
                await stream.write_frame(json.dumps({"media_type": media_type}).encode())
                await stream.write_frame(data)
                return str(_reply(await stream.read_frame())["hash"])
            except (OSError, ProtocolError):
                await self.close()
                raise

    async def get(self, digest: str) -> bytes:
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        async with self._lock:
            try:
                stream = await self._connected()
                await stream.write_frame(json.dumps({"get": digest}).encode())
                reply = _reply(await stream.read_frame())
                data = _body(await stream.read_frame(), reply)
            except (OSError, ProtocolError):
                await self.close()
                raise
        self.cache.add(digest, data)
        return data

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()
