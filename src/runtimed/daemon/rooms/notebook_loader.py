"""Loading a notebook file for a room, its large outputs moved to blobs on the way.

Parsing a 200 MB .ipynb holds the GIL for most of a second, whichever thread does it,
and takes several times the file in memory. Files over ``HELPER_FROM_BYTES`` are loaded by
a helper process (``python -m runtimed.daemon.rooms.notebook_loader``) that parses the
file, writes its large outputs into the blob store and prints the small notebook that is
left: the daemon's event loop never waits for it and its memory never holds the file.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from runtimed.daemon.rooms.notebook_file import read_ipynb
from runtimed.errors import RuntimedError

HELPER_FROM_BYTES = 16 * 1024 * 1024

Loaded = tuple[dict[str, Any], str]  # the notebook (large outputs as refs), the file hash


@dataclass(frozen=True)
class BlobPlace:
    """Where and how the helper stores outputs: the daemon's blob store settings."""

    root: Path
    max_size: int
    threshold: Callable[[], int]


class NotebookLoader:
    """``await loader(path)``: the file as a room loads it (``RuntimedError`` if it is
    not a readable notebook)."""

    def __init__(
        self,
        refer_outputs: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        blobs: BlobPlace | None = None,
    ) -> None:
        self.refer_outputs = refer_outputs
        self.blobs = blobs

    async def __call__(self, path: Path) -> Loaded:
        if self.blobs is not None and _size(path) >= HELPER_FROM_BYTES:
            return await self._in_helper(path, self.blobs)
        nb, file_hash = await asyncio.to_thread(read_ipynb, path)
        if self.refer_outputs is not None:
            nb = await asyncio.to_thread(self.refer_outputs, nb)
        return nb, file_hash

    async def _in_helper(self, path: Path, blobs: BlobPlace) -> Loaded:
        args = [str(path), str(blobs.root), str(blobs.max_size), str(blobs.threshold())]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        try:
            result = msgspec.json.decode(out)
        except msgspec.DecodeError:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimedError(f"cannot load {path}: {tail[0]}", "unreadable") from None
        if "error" in result:
            raise RuntimedError(str(result["error"]), str(result.get("code", "unreadable")))
        return result["notebook"], str(result["hash"])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def main(argv: list[str]) -> int:
    """The helper: load ``path`` into blobs under ``root``; print JSON on stdout."""
    from runtimed.daemon.blobs import BlobStore
    from runtimed.daemon.warm_up import skip_iri_grammars

    skip_iri_grammars()  # this process validates with nbformat too, as the daemon does
    from runtimed.documents.blob_refs import refer_notebook_outputs

    path, root, max_size, threshold = argv
    store = BlobStore(Path(root), int(max_size))

    def put(data: bytes, media_type: str) -> str | None:
        try:
            return store.put(data, media_type)
        except (RuntimedError, OSError):
            return None  # it stays inline

    try:
        nb, file_hash = read_ipynb(Path(path))
    except RuntimedError as exc:
        print(json.dumps({"error": exc.message, "code": exc.code}))
        return 0
    nb = refer_notebook_outputs(nb, put, int(threshold))
    sys.stdout.write(json.dumps({"notebook": nb, "hash": file_hash}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
