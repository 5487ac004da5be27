"""Reading .ipynb files into rooms."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runtimed.errors import RuntimedError


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_hash(path: Path) -> str | None:
    """The hash of a file's text as ``read_ipynb`` computes it; None if it is gone."""
    try:
        return text_hash(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def read_ipynb(path: Path) -> tuple[dict[str, Any], str]:
    """The notebook as an nbformat v4 dict, and the hash of the file's text.

    Unreadable, non-JSON or invalid notebooks raise RuntimedError saying which.
    """
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuntimedError(f"no such notebook: {path}", "not_found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimedError(f"cannot read {path}: {exc}", "unreadable") from exc
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise RuntimedError(
            f"{path} is not a notebook (invalid JSON: {exc})", "invalid_notebook"
        ) from exc
    if not isinstance(raw, dict) or "cells" not in raw:
        raise RuntimedError(f"{path} is not a notebook (no cells)", "invalid_notebook")
    try:
        # nbformat.reads would validate too (and only log what it finds): parse and convert
        # here, then validate once. Schema validation is most of the cost of a big file.
        nb = nbformat.convert(nbformat.reader.reads(text), 4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several unrelated types
        message = getattr(exc, "message", None) or str(exc)
        raise RuntimedError(
            f"{path} is not a valid notebook: {message.splitlines()[0]}", "invalid_notebook"
        ) from exc
    return dict(nb), text_hash(text)
