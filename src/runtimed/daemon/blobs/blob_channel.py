"""The blob channel: clients put blobs and get them back over the socket.

After the handshake, each request is one JSON header frame:

- put: ``{"media_type": "image/png"}`` then one frame of raw bytes; reply
  ``{"ok": true, "hash": ..., "size": n}``.
- get: ``{"get": hash}``; reply ``{"ok": true, "hash", "size", "media_type"}`` then one
  frame of raw bytes.

Errors are ``{"ok": false, "type": "error", "message", "code"}`` and the connection stays
usable.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from runtimed.daemon.blobs.blob_store import DEFAULT_MEDIA_TYPE, BlobStore, check_hash
from runtimed.daemon.server import error_frame, handshake_ok
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.framing import Channel
from runtimed.protocol.messages import Handshake
from runtimed.protocol.stream import FramedStream


def _ok(**fields: Any) -> bytes:
    return json.dumps({"ok": True, **fields}).encode()


class BlobChannel:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def serve(self, stream: FramedStream, handshake: Handshake) -> None:
        stream.set_max_frame(Channel.BLOB)
        await stream.write_frame(handshake_ok())
        while True:
            frame = await stream.read_frame()
            if frame is None:
                return
            try:
                header = json.loads(frame)
            except ValueError as exc:
                raise ProtocolError(f"blob channel: unreadable header: {exc}") from exc
            if not isinstance(header, dict):
                raise ProtocolError("blob channel: the header must be a JSON object")
            if "get" in header:
                await self._get(stream, header["get"])
                continue
            body = await stream.read_frame()
            if body is None:
                raise ProtocolError("blob channel: connection closed before the blob bytes")
            media_type = header.get("media_type") or DEFAULT_MEDIA_TYPE
            try:
                if not isinstance(media_type, str) or len(media_type) > 255:
                    raise RuntimedError("media_type must be a short string", "invalid_request")
                digest = await asyncio.to_thread(self.store.put, body, media_type)
            except RuntimedError as exc:
                await stream.write_frame(error_frame(exc.message, exc.code))
                continue
            await stream.write_frame(_ok(hash=digest, size=len(body)))

    async def _get(self, stream: FramedStream, digest: object) -> None:
        try:
            checked = check_hash(digest)
            meta = self.store.meta(checked)
            data = await asyncio.to_thread(self.store.get, checked)
        except RuntimedError as exc:
            await stream.write_frame(error_frame(exc.message, exc.code))
            return
        await stream.write_frame(_ok(hash=checked, size=len(data), media_type=meta.media_type))
        await stream.write_frame(data)
