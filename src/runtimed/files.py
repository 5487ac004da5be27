"""Writing files so that readers see the old content or the new, never half of it."""

from __future__ import annotations

import os
import time
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, sync: bool = True, mode: int = 0o600) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it over ``path``.

    ``sync``: fsync before the rename, so a crash leaves the old or the new content even
    on power loss. ``mode`` is the new file's mode (before the umask). The temp name is
    unique, so concurrent writers of one path never interleave.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
