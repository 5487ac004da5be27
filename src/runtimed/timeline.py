"""Stage stamps along an execution's path, for ``bench/execute.py --timeline``.

Off unless ``RUNTIMED_TIMELINE`` names a directory when the process starts: then
``stamp`` keeps ``(time.perf_counter_ns(), stage)`` in memory (CLOCK_MONOTONIC, the same
clock in every process of the machine, so a client's and the daemon's stamps line up) and
the process writes them to ``<dir>/timeline-<pid>.txt`` when it exits. Off, ``stamp``
returns at once; call sites that build a stage's name test ``ENABLED`` first.
"""

from __future__ import annotations

import atexit
import os
import time
from collections import deque
from pathlib import Path

_DIR = os.environ.get("RUNTIMED_TIMELINE") or None
ENABLED = _DIR is not None
#: Bounded: a long-running process with the variable set cannot grow without end.
_stamps: deque[tuple[int, str]] = deque(maxlen=1_000_000)


def enable() -> None:
    """Turn stamping on in this process (a bench measuring its own client)."""
    global ENABLED
    ENABLED = True


def stamp(stage: str) -> None:
    """Remember that ``stage`` happened now (when enabled)."""
    if ENABLED:
        _stamps.append((time.perf_counter_ns(), stage))


def stamps() -> list[tuple[int, str]]:
    """This process's stamps so far, oldest first."""
    return list(_stamps)


def read_dir(directory: str | Path) -> list[tuple[int, str]]:
    """Every stamp the processes that exited wrote into ``directory``."""
    found: list[tuple[int, str]] = []
    for path in Path(directory).glob("timeline-*.txt"):
        for line in path.read_text().splitlines():
            ns, _, stage = line.partition(" ")
            found.append((int(ns), stage))
    return found


def _write() -> None:
    if _DIR is None or not _stamps:
        return
    lines = "".join(f"{ns} {stage}\n" for ns, stage in _stamps)
    Path(_DIR, f"timeline-{os.getpid()}.txt").write_text(lines)


if ENABLED:
    atexit.register(_write)
