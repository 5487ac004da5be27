"""The runtime document: kernel state, queue and execution records, written only by the
daemon and synced read-only to every peer of a room."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from runtimed.documents.notebook import _ints
from runtimed.documents.widgets import WidgetsMap

EXECUTION_STATUSES = ("queued", "running", "done", "error", "cancelled")
FINAL_STATUSES = ("done", "error", "cancelled")


class RuntimeDoc:
    """``kernel {lifecycle, activity, env_source, name, language, error, error_code}``,
    ``queue {executing, queued}``, ``executions {id: {cell_id, status, execution_count,
    success, started_at, ended_at}}``, ``widgets {model_id: entry}`` (documents/widgets.py)."""

    def __init__(self, doc: Doc[Any] | None = None) -> None:
        self.doc = doc if doc is not None else Doc()
        self.kernel_map: Map[Any] = self.doc.get("kernel", type=Map)
        self.queue_map: Map[Any] = self.doc.get("queue", type=Map)
        self.executions_map: Map[Any] = self.doc.get("executions", type=Map)
        self.widgets = WidgetsMap(self.doc)

    # --- daemon side ----------------------------------------------------------------

    def set_kernel(self, **fields: Any) -> None:
        with self.doc.transaction():
            for key, value in fields.items():
                if self.kernel_map.get(key) != value:
                    self.kernel_map[key] = value

    def set_queue(self, executing: str | None, queued: list[str]) -> None:
        with self.doc.transaction():
            self.queue_map["executing"] = executing
            self.queue_map["queued"] = list(queued)

    def set_execution(self, execution_id: str, record: dict[str, Any]) -> None:
        self.executions_map[execution_id] = dict(record)

    def delete_execution(self, execution_id: str) -> None:
        if execution_id in self.executions_map:
            del self.executions_map[execution_id]

    def copy(self) -> RuntimeDoc:
        """A new document holding this one's content and none of its history: the
        tombstones deleted records leave behind are not copied."""
        new = RuntimeDoc()
        with new.doc.transaction():
            new.set_kernel(**self.kernel())
            queue = self.queue()
            new.set_queue(queue.get("executing"), list(queue.get("queued") or []))
            for execution_id, record in self.executions_map.items():
                new.executions_map[execution_id] = _ints(record)
            for model_id, entry in self.widgets.entries().items():
                new.widgets.set(model_id, entry)
        return new

    # --- reading --------------------------------------------------------------------

    def kernel(self) -> dict[str, Any]:
        return dict(_ints(self.kernel_map.to_py()) or {})

    def queue(self) -> dict[str, Any]:
        return dict(_ints(self.queue_map.to_py()) or {})

    def execution(self, execution_id: str) -> dict[str, Any] | None:
        value = self.executions_map.get(execution_id)
        return dict(_ints(value)) if isinstance(value, dict) else None
