"""Content-addressed blobs: the store, the localhost HTTP read server, the blob channel."""

from runtimed.daemon.blobs.blob_store import (
    BlobMeta,
    BlobStore,
    BlobTooLargeError,
    check_hash,
    hashes_in,
    is_valid_hash,
)

__all__ = [
    "BlobMeta",
    "BlobStore",
    "BlobTooLargeError",
    "check_hash",
    "hashes_in",
    "is_valid_hash",
]
