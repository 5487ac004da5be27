"""`runt daemon logs`: the last lines of runtimed.log, and following it across rotations."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_BLOCK = 64 * 1024
#: How often `logs -f` looks for new lines: a person reading a log does not notice 0.2 s.
FOLLOW_INTERVAL_SECS = 0.2


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of ``path`` (without line ends), reading only the end of
    the file: a log of megabytes costs a few blocks."""
    if count <= 0:
        return []
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        data = b""
        position = end
        # count + 1 line breaks make sure the first kept line is whole.
        while position > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:]


def follow(path: Path, emit: Callable[[str], None], stop: Callable[[], bool]) -> None:
    """Call ``emit`` for each line appended to ``path`` from now on until ``stop()``; when
    the log is rotated or truncated, go on from the start of the new file."""
    handle: BinaryIO | None = _open(path, at_end=True)
    partial = b""
    try:
        while not stop():
            if handle is None:
                handle = _open(path, at_end=False)  # created (or rotated in) since
                if handle is None:
                    time.sleep(FOLLOW_INTERVAL_SECS)
                    continue
            chunk = handle.read()
            if chunk:
                *whole, partial = (partial + chunk).split(b"\n")
                for line in whole:
                    emit(line.decode(errors="replace"))
                continue
            if _replaced(path, handle):
                handle.close()
                handle, partial = None, b""
                continue
            time.sleep(FOLLOW_INTERVAL_SECS)
    finally:
        if handle is not None:
            handle.close()


def _open(path: Path, at_end: bool) -> BinaryIO | None:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    if at_end:
        handle.seek(0, os.SEEK_END)
    return handle


def _replaced(path: Path, handle: BinaryIO) -> bool:
    """Whether ``path`` is now another file (rotated) or shorter than what was read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False  # mid-rotation: the new file comes in a moment
    return st.st_ino != os.fstat(handle.fileno()).st_ino or st.st_size < handle.tell()
