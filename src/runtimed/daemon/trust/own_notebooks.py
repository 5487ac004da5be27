"""The "created on this machine by this user" marker of notebooks made here.

A notebook the daemon creates (a new file, an untitled notebook) gets
``metadata.runt.created_here = "<nonce>.<mac>"``, the MAC an HMAC-SHA256 of the nonce under
a key only this user can read (``<config dir>/notebook-key``, 0600). Whatever such a
notebook depends on was typed by this user's clients, so it is trusted as a whole. A
notebook from elsewhere cannot carry a valid marker without the key; copying the marker
from one of the user's own notebooks into a foreign one is the one way around it, and it
needs the user's file in the attacker's hands first.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtimed.paths import ensure_private_dir

if TYPE_CHECKING:
    from runtimed.documents.notebook import NotebookDoc

KEY_FILE = "notebook-key"
FIELD = "created_here"


class NotebookKey:
    """Makes and checks markers with the key in ``<config dir>/notebook-key``."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / KEY_FILE
        self._key: bytes | None = None

    def marker(self) -> str:
        """A fresh marker for a notebook created now."""
        nonce = secrets.token_hex(12)
        return f"{nonce}.{self._mac(nonce)}"

    def created_here(self, metadata: dict[str, Any]) -> bool:
        """Whether ``metadata.runt.created_here`` is a marker made with this key."""
        runt = metadata.get("runt") if isinstance(metadata, dict) else None
        value = runt.get(FIELD) if isinstance(runt, dict) else None
        if not isinstance(value, str) or value.count(".") != 1 or len(value) > 200:
            return False
        nonce, mac = value.split(".")
        if not self.path.exists():  # no key yet: nothing was ever marked
            return False
        return hmac.compare_digest(mac, self._mac(nonce))

    def stamped(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """``metadata.runt`` with a fresh marker added (the other fields kept)."""
        runt = metadata.get("runt") if isinstance(metadata, dict) else None
        return {**(runt if isinstance(runt, dict) else {}), FIELD: self.marker()}

    def _mac(self, nonce: str) -> str:
        digest = hmac.new(self._load(), f"runt-created-here:{nonce}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def _load(self) -> bytes:
        if self._key is None:
            self._key = _read_or_create(self.path)
        return self._key


def _read_or_create(path: Path) -> bytes:
    ensure_private_dir(path.parent, tighten=False)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key.encode()
        raise RuntimeError(f"{path} is not a runtimed key; delete it to make a new one") from None
    key = secrets.token_hex(32)
    try:
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)
    return key.encode()


def stamp_notebook(key: NotebookKey, nb: NotebookDoc) -> None:
    """Mark a notebook created here (one without a valid marker yet)."""
    metadata = nb.metadata()
    if not key.created_here(metadata):
        nb.set_metadata("runt", key.stamped(metadata))
