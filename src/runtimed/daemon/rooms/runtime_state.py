"""RuntimeState: the daemon's own copy of a room's runtime document, written in batches.

A run of one cell changes the runtime document half a dozen times (queued, running,
busy, idle, done, queue moves). Written one by one, each change is a transaction, an
update frame to every peer and work for every client. Here changes land in a plain
Python copy at once (so the daemon always reads its latest state) and reach the
document together: a few ms later, or at once before the room sends a response or an
event, so that no peer ever hears of a result before the state that goes with it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runtimed.documents.runtime import RuntimeDoc

# Long enough that a quick cell goes from queued to done in one write; short enough that
# no one can see a "running" state arrive late.
FLUSH_DELAY_SECS = 0.02
#: The runtime document keeps 500 records; every deleted one leaves a tombstone. After
#: this many it is rebuilt (the room's peers then replace their replica).
REBUILD_AFTER_DELETIONS = 500


class RuntimeState:
    """Kernel fields, queue and execution records of one room (see :class:`RuntimeDoc`)."""

    def __init__(self, doc: RuntimeDoc, delay: float = FLUSH_DELAY_SECS) -> None:
        self.doc = doc
        self.delay = delay
        self._kernel_fields: dict[str, Any] = doc.kernel()
        self._queue: dict[str, Any] = doc.queue()
        self._kernel_dirty: dict[str, Any] = {}
        self._queue_dirty = False
        self._executions: dict[str, dict[str, Any] | None] = {}  # None: delete it
        self._widgets: dict[str, dict[str, Any] | None] = {}  # None: delete it
        self._widgets_cleared = False
        self._handle: asyncio.TimerHandle | None = None
        #: Records deleted from the document since it was last rebuilt (each leaves a
        #: tombstone in it).
        self.deleted = 0

    # --- reading (always current) ----------------------------------------------------

    def kernel_fields(self) -> dict[str, Any]:
        """The document's ``kernel`` map: lifecycle, activity, env_source, name, ..."""
        return dict(self._kernel_fields)

    def queue(self) -> dict[str, Any]:
        return {"executing": self._queue.get("executing"), "queued": self._queue.get("queued", [])}

    # --- writing (batched) -----------------------------------------------------------

    def set_kernel(self, **fields: Any) -> None:
        for key, value in fields.items():
            if key not in self._kernel_fields or self._kernel_fields[key] != value:
                self._kernel_fields[key] = value
                self._kernel_dirty[key] = value
        self._schedule()

    def set_queue(self, executing: str | None, queued: list[str]) -> None:
        new = {"executing": executing, "queued": list(queued)}
        if new == self._queue:
            return
        self._queue = new
        self._queue_dirty = True
        self._schedule()

    def set_execution(self, execution_id: str, record: dict[str, Any]) -> None:
        self._executions[execution_id] = dict(record)
        self._schedule()

    def forget_execution(self, execution_id: str) -> None:
        """Drop an old record from the document (durable history keeps it)."""
        self._executions[execution_id] = None
        self._schedule()

    def set_widget(self, model_id: str, entry: dict[str, Any] | None) -> None:
        """A widget model's entry (None: its comm closed). The entry is read when the
        batch is written: a flood of updates to one model is one write per batch."""
        self._widgets[model_id] = entry
        self._schedule()

    def clear_widgets(self) -> None:
        """Every widget goes (the kernel restarted or died)."""
        self._widgets.clear()
        self._widgets_cleared = True
        self._schedule()

    def flush(self) -> None:
        """Write every pending change into the document, in one transaction."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        widgets, self._widgets = self._widgets, {}
        cleared, self._widgets_cleared = self._widgets_cleared, False
        if not (self._kernel_dirty or self._queue_dirty or self._executions or widgets or cleared):
            return
        kernel, self._kernel_dirty = self._kernel_dirty, {}
        executions, self._executions = self._executions, {}
        queue = self._queue if self._queue_dirty else None
        self._queue_dirty = False
        with self.doc.doc.transaction():
            if kernel:
                self.doc.set_kernel(**kernel)
            if queue is not None:
                self.doc.set_queue(queue["executing"], queue["queued"])
            for execution_id, record in executions.items():
                if record is None:
                    self.doc.delete_execution(execution_id)
                    self.deleted += 1
                else:
                    self.doc.set_execution(execution_id, record)
            if cleared:
                self.doc.widgets.clear()
            for model_id, entry in widgets.items():
                if entry is None:
                    self.doc.widgets.delete(model_id)
                else:
                    self.doc.widgets.set(model_id, entry)

    @property
    def needs_rebuild(self) -> bool:
        """Enough records were deleted that the document's tombstones outweigh it."""
        return self.deleted >= REBUILD_AFTER_DELETIONS

    def rebuild(self) -> RuntimeDoc:
        """Write into a new document from now on, holding this one's content and none of
        its tombstones (``RuntimeDoc.copy``); returns it."""
        self.flush()
        self.doc = self.doc.copy()
        self.deleted = 0
        return self.doc

    def _schedule(self) -> None:
        if self._handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (set-up code): write now
            self.flush()
            return
        self._handle = loop.call_later(self.delay, self.flush)

    def close(self) -> None:
        self.flush()
