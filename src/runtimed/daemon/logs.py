"""The daemon's log: stderr and a rotated file, with repeated lines rate-limited.

A condition that repeats (accept() failing for want of descriptors, the same traceback
again and again) must not flood the log and rotate real history away: the same message
(by template) is let through once per interval, with a count of what was held back.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

REPEAT_INTERVAL_SECS = 60.0


class RepeatFilter(logging.Filter):
    """At most one record per (logger, message template) per ``interval`` seconds."""

    def __init__(self, interval: float = REPEAT_INTERVAL_SECS) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        # What floods is asyncio's (accept() with no descriptors left) and tracebacks;
        # the daemon's own warnings are one line per event already.
        if record.levelno < logging.WARNING or (record.name != "asyncio" and not record.exc_info):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last minute)"
        if len(self._last) > 10_000:  # bounded: forget the oldest keys
            for old in list(self._last)[:5_000]:
                self._last.pop(old, None)
        return True


def configure_logging(log_file: Path) -> None:
    level = logging.DEBUG if os.environ.get("RUNTIMED_LOG", "").lower() == "debug" else logging.INFO
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    repeats = RepeatFilter()
    root = logging.getLogger()
    root.setLevel(level)
    stderr = logging.StreamHandler(sys.stderr)
    logfile = logging.handlers.RotatingFileHandler(log_file, maxBytes=5 * 2**20, backupCount=2)
    for handler in (stderr, logfile):
        handler.setFormatter(fmt)
        handler.addFilter(repeats)
    root.handlers[:] = [stderr, logfile]
