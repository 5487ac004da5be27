"""Clients of the blob channel: put blobs, get them back (cached by hash).

``BlobClient`` is blocking, ``AsyncBlobClient`` runs on asyncio; both run ``BlobCalls``
(the messages are in ``runtimed.protocol.blob``). The calls live here, not in
``calls.py``: a notebook session needs them, and not the pool channel's Structs.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import OrderedDict
from pathlib import Path

from runtimed.client.channel import AsyncChannel, AsyncClient, BlockingChannel, BlockingClient
from runtimed.client.core import MORE, Call, _More
from runtimed.client.daemon_address import AddressLike, daemon_address
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.blob import (
    DEFAULT_MEDIA_TYPE,
    BlobError,
    BlobFound,
    BlobStored,
    GetBlob,
    PutBlob,
    decode_blob_reply,
)
from runtimed.protocol.codec import encode

CACHE_BYTES = 256 * 1024 * 1024
#: Blob files at least this big are read in a worker thread (the loop keeps serving);
#: smaller ones take a few ms from the page cache, less than the hop to a thread.
READ_IN_THREAD = 8 << 20
_HASH = re.compile(r"[0-9a-f]{64}")


def local_blob(channel: BlockingChannel | AsyncChannel, digest: str) -> tuple[Path, int] | None:
    """The file of a blob and its size, when the daemon is on this machine (a Unix
    socket: it named its blob directory in the handshake) and the file is there; else
    None (the channel serves it). The digest comes from a document, so it is checked
    before it makes a path."""
    root = channel.handshake.get("blob_dir")
    if channel.address.url is not None or not isinstance(root, str) or not _HASH.fullmatch(digest):
        return None
    path = Path(root, digest[:2], digest[2:])
    try:
        return path, os.stat(path).st_size
    except OSError:
        return None


def _blob_reply(frame: bytes) -> BlobStored | BlobFound:
    reply = decode_blob_reply(frame)
    if isinstance(reply, BlobError):
        raise RuntimedError(reply.message, reply.code)
    return reply


class BlobCalls:
    """The blob channel's requests as ``Call``s (see ``calls.py`` for the others)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout

    def put(self, data: bytes, media_type: str) -> Call[str]:
        def receive(frame: bytes) -> str:
            reply = _blob_reply(frame)
            if not isinstance(reply, BlobStored):
                raise ProtocolError(f"unexpected blob reply {reply!r}")
            return reply.hash

        return Call((encode(PutBlob(media_type)), data), receive, self.timeout, "blob put")

    def get(self, digest: str) -> Call[bytes]:
        header: list[BlobFound] = []

        def receive(frame: bytes) -> bytes | _More:
            if not header:
                reply = _blob_reply(frame)
                if not isinstance(reply, BlobFound):
                    raise ProtocolError(f"unexpected blob reply {reply!r}")
                header.append(reply)
                return MORE
            if len(frame) != header[0].size:
                raise ProtocolError("blob size does not match its header")
            return frame

        return Call((encode(GetBlob(digest)),), receive, self.timeout, "blob get")


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


class BlobClient(BlockingClient):
    """A blocking blob-channel connection, opened on first use and reopened after errors."""

    def __init__(
        self,
        socket_path: AddressLike = None,
        timeout: float | None = 60.0,
        autostart: bool = True,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        self._calls = BlobCalls(timeout)
        self._channel = BlockingChannel(
            daemon_address(socket_path, url, token), "blob", timeout, autostart
        )
        self.cache = BlobCache()

    def put(self, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE) -> str:
        """Store ``data``; returns its SHA-256 hash."""
        return self._channel.run(self._calls.put(data, media_type))

    def get(self, digest: str) -> bytes:
        """A blob's bytes (cached by hash: content never changes)."""
        data = self.cache.get(digest)
        if data is None:
            self._channel.connect()  # its handshake names the blob directory
            local = local_blob(self._channel, digest)
            data = _read(local[0]) if local is not None else None
            if data is None:
                data = self._channel.run(self._calls.get(digest))
            self.cache.add(digest, data)
        return data


class AsyncBlobClient(AsyncClient):
    """The asyncio twin of BlobClient."""

    def __init__(
        self,
        socket_path: AddressLike = None,
        timeout: float | None = 60.0,
        autostart: bool = True,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        self._calls = BlobCalls(timeout)
        self._channel = AsyncChannel(
            daemon_address(socket_path, url, token), "blob", timeout, autostart
        )
        self.cache = BlobCache()

    async def put(self, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE) -> str:
        """Store ``data``; returns its SHA-256 hash."""
        return await self._channel.run(self._calls.put(data, media_type))

    async def get(self, digest: str) -> bytes:
        """A blob's bytes (cached by hash: content never changes)."""
        data = self.cache.get(digest)
        if data is None:
            await self._channel.connect()  # its handshake names the blob directory
            local = local_blob(self._channel, digest)
            data = None
            if local is not None:
                path, size = local
                in_thread = size >= READ_IN_THREAD
                data = await asyncio.to_thread(_read, path) if in_thread else _read(path)
            if data is None:
                data = await self._channel.run(self._calls.get(digest))
            self.cache.add(digest, data)
        return data


def _read(path: Path) -> bytes | None:
    """A blob file's bytes; None if it cannot be read (the channel is asked instead)."""
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read()
    except OSError:
        return None
