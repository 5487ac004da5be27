"""The blob channel: clients put blobs and get them back over the socket (the messages
are in ``runtimed.protocol.blob``). A bad request gets an error reply; the connection
stays usable."""

from __future__ import annotations

import asyncio

from runtimed.daemon.blobs.blob_store import BlobStore, check_hash
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.blob import (
    BlobError,
    BlobFound,
    BlobStored,
    GetBlob,
    PutBlob,
    decode_blob_request,
)
from runtimed.protocol.codec import encode
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.framing import Channel
from runtimed.protocol.handshake import Handshake, handshake_ok


class BlobChannel:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def serve(self, stream: FrameConnection, handshake: Handshake) -> None:
        stream.set_max_frame(Channel.BLOB)
        # A client on this machine (the Unix socket) reads blobs from their files: one
        # copy from the page cache instead of the daemon reading and sending them.
        await stream.write_frame(handshake_ok(blob_dir=str(self.store.root)))
        while (frame := await stream.read_frame()) is not None:
            match decode_blob_request(frame):
                case GetBlob(hash=digest):
                    await self._get(stream, digest)
                case PutBlob(media_type=media_type):
                    body = await stream.read_frame()
                    if body is None:
                        raise ProtocolError("blob channel: connection closed before the blob bytes")
                    await self._put(stream, body, media_type)

    async def _put(self, stream: FrameConnection, body: bytes, media_type: str) -> None:
        try:  # the store checks the media type (nothing that could split a header)
            digest = await asyncio.to_thread(self.store.put, body, media_type)
        except RuntimedError as exc:
            await stream.write_frame(encode(BlobError(exc.message, exc.code)))
            return
        await stream.write_frame(encode(BlobStored(hash=digest, size=len(body))))

    async def _get(self, stream: FrameConnection, digest: str) -> None:
        try:
            checked = check_hash(digest)
            meta = self.store.meta(checked)
            data = await asyncio.to_thread(self.store.get, checked)
        except RuntimedError as exc:
            await stream.write_frame(encode(BlobError(exc.message, exc.code)))
            return
        header = BlobFound(hash=checked, size=len(data), media_type=meta.media_type)
        stream.send(encode(header))
        await stream.write_frame(data)
