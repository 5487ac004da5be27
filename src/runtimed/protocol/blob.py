"""Blob-channel requests and replies.

- put: ``{"type": "put", "media_type": ...}`` then one frame of raw bytes; reply
  ``{"type": "stored", "hash", "size"}``.
- get: ``{"type": "get", "hash": ...}``; reply ``{"type": "blob", "hash", "size",
  "media_type"}`` then one frame of raw bytes.
- errors: ``{"type": "error", "message", "code"}``; the connection stays usable.
"""

from __future__ import annotations

import msgspec

from runtimed.protocol.codec import decode

DEFAULT_MEDIA_TYPE = "application/octet-stream"


class PutBlob(msgspec.Struct, frozen=True, tag="put", tag_field="type"):
    media_type: str = DEFAULT_MEDIA_TYPE


class GetBlob(msgspec.Struct, frozen=True, tag="get", tag_field="type"):
    hash: str


BlobRequest = PutBlob | GetBlob


class BlobStored(msgspec.Struct, frozen=True, tag="stored", tag_field="type"):
    hash: str
    size: int


class BlobFound(msgspec.Struct, frozen=True, tag="blob", tag_field="type"):
    """Header of a blob: its bytes follow in the next frame."""

    hash: str
    size: int
    media_type: str


class BlobError(msgspec.Struct, frozen=True, tag="error", tag_field="type"):
    message: str
    code: str = "error"


BlobReply = BlobStored | BlobFound | BlobError

_request_decoder = msgspec.json.Decoder(BlobRequest)
_reply_decoder = msgspec.json.Decoder(BlobReply)


def decode_blob_request(data: bytes) -> BlobRequest:
    return decode(_request_decoder, data, "blob request", BlobRequest)  # type: ignore[no-any-return]


def decode_blob_reply(data: bytes) -> BlobReply:
    return decode(_reply_decoder, data, "blob reply", BlobReply)  # type: ignore[no-any-return]
