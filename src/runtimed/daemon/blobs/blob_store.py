"""A content-addressed blob store: ``blobs/ab/cdef…`` plus a ``.meta`` JSON sidecar.

A blob's name is the SHA-256 of its raw bytes. Writes go to a temp file in the same shard
and are renamed into place, so a reader never sees a partial blob and two writers of the
same content are harmless (``put`` is idempotent). Hashes are validated against
``^[0-9a-f]{64}$`` before any path is built, so no caller can reach outside the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from runtimed.errors import RuntimedError
from runtimed.files import atomic_write

log = logging.getLogger(__name__)

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_MAX_BLOB_SIZE = 256 * 1024 * 1024
DEFAULT_MEDIA_TYPE = "application/octet-stream"


class BlobTooLargeError(RuntimedError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"blob of {size} bytes exceeds the maximum blob size of {limit} bytes",
            "blob_too_large",
        )


@dataclass(frozen=True)
class BlobMeta:
    hash: str
    media_type: str
    size: int
    created_at: float


def is_valid_hash(value: object) -> bool:
    return isinstance(value, str) and HASH_RE.fullmatch(value) is not None


def check_hash(value: object) -> str:
    if not is_valid_hash(value):
        raise RuntimedError(f"malformed blob hash {value!r}: expected 64 hex digits", "bad_hash")
    assert isinstance(value, str)
    return value


class BlobStore:
    """Blobs under ``root``. Thread-safe for concurrent ``put`` of any content."""

    def __init__(self, root: Path, max_size: int = DEFAULT_MAX_BLOB_SIZE) -> None:
        self.root = root
        self.max_size = max_size

    def path(self, digest: str) -> Path:
        """The file of a blob (validated; the file may not exist)."""
        digest = check_hash(digest)
        return self.root / digest[:2] / digest[2:]

    def _meta_path(self, digest: str) -> Path:
        return self.path(digest).with_name(digest[2:] + ".meta")

    def put(self, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE) -> str:
        """Store ``data``; returns its SHA-256 hex digest. Storing it again is a no-op."""
        check_media_type(media_type)
        if len(data) > self.max_size:
            raise BlobTooLargeError(len(data), self.max_size)
        digest = hashlib.sha256(data).hexdigest()
        dest = self.path(digest)
        if dest.exists() and self._meta_path(digest).exists():
            os.utime(dest)  # referenced again: a fresh grace period
            return digest
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(dest, data, sync=False)
        meta = {"media_type": media_type, "size": len(data), "created_at": time.time()}
        atomic_write(self._meta_path(digest), json.dumps(meta).encode(), sync=False)
        return digest

    def writer(self, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobWriter:
        """A blob written piece by piece (from any thread), never held whole in memory."""
        return BlobWriter(self, check_media_type(media_type))

    def _place(self, tmp: Path, digest: str, size: int, media_type: str) -> None:
        dest = self.path(digest)
        if dest.exists() and self._meta_path(digest).exists():
            tmp.unlink(missing_ok=True)
            os.utime(dest)
            return
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(tmp, dest)
        meta = {"media_type": media_type, "size": size, "created_at": time.time()}
        atomic_write(self._meta_path(digest), json.dumps(meta).encode(), sync=False)

    def has(self, digest: str) -> bool:
        return is_valid_hash(digest) and self.path(digest).is_file()

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise RuntimedError(f"no blob {digest}", "blob_not_found") from None

    def meta(self, digest: str) -> BlobMeta:
        path = self.path(digest)
        try:
            raw = json.loads(self._meta_path(digest).read_text())
        except (OSError, ValueError):
            if not path.is_file():
                raise RuntimedError(f"no blob {digest}", "blob_not_found") from None
            st = path.stat()  # a blob whose sidecar was lost still serves
            return BlobMeta(digest, DEFAULT_MEDIA_TYPE, st.st_size, st.st_mtime)
        return BlobMeta(
            digest,
            str(raw.get("media_type") or DEFAULT_MEDIA_TYPE),
            int(raw.get("size", 0)),
            float(raw.get("created_at", 0.0)),
        )

    def hashes(self) -> list[str]:
        """Every stored blob's hash."""
        found: list[str] = []
        if not self.root.is_dir():
            return found
        for shard in self.root.iterdir():
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for entry in shard.iterdir():
                digest = shard.name + entry.name
                if is_valid_hash(digest):
                    found.append(digest)
        return found

    def gc(self, referenced: set[str], grace_secs: float, now: float | None = None) -> list[str]:
        """Delete blobs not in ``referenced`` that are older than ``grace_secs``.

        The grace period protects a blob written just before the document that refers to
        it, and blobs a client put for later use. Returns the deleted hashes.
        """
        now = time.time() if now is None else now
        removed = []
        for digest in self.hashes():
            if digest in referenced:
                continue
            path = self.path(digest)
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age < grace_secs:
                continue
            self._meta_path(digest).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            removed.append(digest)
        # Temp files of writers that died mid-write.
        if self.root.is_dir():
            for tmp in [*self.root.glob("*/.*.tmp"), *self.root.glob(".*.tmp")]:
                try:
                    if now - tmp.stat().st_mtime > max(grace_secs, 3600):
                        tmp.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
        if removed:
            log.info("blob gc removed %d unreferenced blob(s)", len(removed))
        return removed


class BlobWriter:
    """One blob written in pieces: hashed as it is written to a temp file, which
    ``commit`` renames into place. Bounded by the store's maximum blob size."""

    def __init__(self, store: BlobStore, media_type: str) -> None:
        self.store = store
        self.media_type = media_type
        self.size = 0
        self._hash = hashlib.sha256()
        store.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tmp = store.root / f".{os.getpid()}.{time.monotonic_ns()}.tmp"
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "written after commit or abort"
        if self.size + len(data) > self.store.max_size:
            raise BlobTooLargeError(self.size + len(data), self.store.max_size)
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self.size += len(data)

    def commit(self) -> str:
        """Close the blob; returns its SHA-256 hex digest."""
        assert self._fd is not None, "committed twice"
        os.close(self._fd)
        self._fd = None
        digest = self._hash.hexdigest()
        try:
            self.store._place(self._tmp, digest, self.size, self.media_type)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return digest

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tmp.unlink(missing_ok=True)


_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)


def is_valid_media_type(media_type: object) -> bool:
    """``type/subtype`` as RFC 6838 allows it: nothing that could split an HTTP header."""
    return isinstance(media_type, str) and _MEDIA_TYPE.fullmatch(media_type) is not None


def check_media_type(media_type: object) -> str:
    if not is_valid_media_type(media_type):
        raise RuntimedError(
            f"invalid media type {str(media_type)[:80]!r}: expected type/subtype, like image/png",
            "invalid_media_type",
        )
    assert isinstance(media_type, str)
    return media_type


HASHES_IN_TEXT = re.compile(rb"[0-9a-f]{64}")


def hashes_in(data: bytes) -> set[str]:
    """Every blob-hash-shaped string in ``data`` (a conservative reference scan)."""
    return {m.decode() for m in HASHES_IN_TEXT.findall(data)}
