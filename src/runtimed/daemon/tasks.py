"""Stopping a task the daemon owns without losing the caller's own cancellation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has finished.

    Not ``task.cancel()`` then ``await task`` under ``suppress(CancelledError)``: if the
    caller is cancelled during that wait, the suppress takes the caller's own
    CancelledError for the task's and the caller carries on as if nobody had asked it to
    stop (a daemon shutdown that never finished). ``asyncio.wait`` never raises the task's
    CancelledError, so whatever CancelledError reaches the caller is its own.
    """
    if not task.cancelling():  # already being stopped: a second cancel cuts its clean-up
        task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and (error := task.exception()) is not None:
        # Retrieved here, so asyncio does not report it again when the task is collected.
        log.debug("%s ended with %r while being stopped", task.get_name(), error)
