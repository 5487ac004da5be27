"""Reading .ipynb files into rooms."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec

from runtimed.errors import RuntimedError


def text_hash(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def file_hash(path: Path) -> str | None:
    """The hash of a file's bytes as ``read_ipynb`` computes it; None if it is gone.
    Read a megabyte at a time: a 200 MB notebook is never in memory for it."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def read_ipynb(path: Path) -> tuple[dict[str, Any], str]:
    """The notebook as an nbformat v4 dict, and the hash of the file's text.

    Unreadable, non-JSON or invalid notebooks raise RuntimedError saying which.
    """
    import nbformat

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RuntimedError(f"no such notebook: {path}", "not_found") from None
    except OSError as exc:
        raise RuntimedError(f"cannot read {path}: {exc}", "unreadable") from exc
    try:
        # Parsed once, by msgspec: a few times faster than json, and this holds the GIL
        # (the daemon's event loop waits) for as long as it runs on a 200 MB file.
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RuntimedError(
            f"{path} is not a notebook (invalid JSON: {exc})", "invalid_notebook"
        ) from exc
    if not isinstance(raw, dict) or "cells" not in raw:
        raise RuntimedError(f"{path} is not a notebook (no cells)", "invalid_notebook")
    try:
        # nbformat.reads would parse again and validate too (only logging what it finds):
        # convert here, then validate once.
        nb = nbformat.convert(nbformat.from_dict(raw), 4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several unrelated types
        message = getattr(exc, "message", None) or str(exc)
        raise RuntimedError(
            f"{path} is not a valid notebook: {message.splitlines()[0]}", "invalid_notebook"
        ) from exc
    return dict(nb), text_hash(data)
