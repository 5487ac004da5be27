"""The notebook document: a pycrdt Doc in the jupyter_ydoc ``YNotebook`` schema.

``cells`` is an Array of Maps (``id``, ``cell_type``, ``source`` as Text, ``metadata``,
``execution_count``, ``outputs``); ``meta`` holds ``nbformat`` and ``metadata``. Outputs
are plain JSON values in the ``outputs`` Array: only the daemon writes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Doc, Map, Text

from runtimed.errors import RuntimedError

NBFORMAT = 4
NBFORMAT_MINOR = 5
CELL_TYPES = ("code", "markdown", "raw")


def _utf8_offset(text: str, index: int) -> int:
    """pycrdt Text positions count UTF-8 bytes; the API counts characters."""
    return len(text[:index].encode())


def new_cell_id() -> str:
    return f"cell-{uuid.uuid4()}"


@dataclass(frozen=True)
class CellData:
    """A snapshot of one cell, as plain Python values."""

    id: str
    cell_type: str
    source: str
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def _cell_id(cell: Any) -> str:
    """A cell's id; garbage a peer put in the cells array has none (until repaired)."""
    return str(cell.get("id")) if isinstance(cell, Map) else "<not a cell>"


def _as_int(value: Any) -> int | None:
    # Yjs numbers are doubles: 3 comes back as 3.0.
    return int(value) if isinstance(value, int | float) else None


def _ints(value: Any) -> Any:
    """Turn integral floats back into ints, recursively (Yjs stores numbers as doubles)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


class NotebookDoc:
    """Typed access to a notebook Doc. All mutations happen in one transaction each."""

    def __init__(self, doc: Doc[Any] | None = None) -> None:
        self.doc = doc if doc is not None else Doc()
        self.cells: Array[Any] = self.doc.get("cells", type=Array)
        self.meta: Map[Any] = self.doc.get("meta", type=Map)
        self.state: Map[Any] = self.doc.get("state", type=Map)
        # id -> index, rebuilt after structural changes only (text edits do not touch it):
        # lookups by id are hot (every execution does several) and pycrdt access is slow.
        self._index: dict[str, int] | None = None
        self._duplicates: list[int] = []
        # id -> the cell's Map, kept with the index (a lookup of cells[i] makes a new
        # wrapper each time): valid until the next structural change clears both.
        self._ycells: dict[str, Map[Any]] = {}
        self.cells.observe(self._on_cells_changed)

    def _on_cells_changed(self, event: Any) -> None:
        delta = event.delta
        if (
            self._index is not None
            and len(delta) <= 2
            and "insert" in delta[-1]
            and (len(delta) == 1 or "retain" in delta[0])
        ):
            start = delta[0]["retain"] if len(delta) == 2 else 0
            inserted = delta[-1]["insert"]
            if start + len(inserted) == len(self.cells):  # appended at the end: extend
                for offset, cell in enumerate(inserted):
                    cid = _cell_id(cell)
                    if cid in self._index:
                        self._duplicates.append(start + offset)
                    else:
                        self._index[cid] = start + offset
                        if isinstance(cell, Map):
                            self._ycells[cid] = cell
                return
        self._index = None
        self._ycells = {}

    def _ensure_index(self) -> dict[str, int]:
        if self._index is None:
            index: dict[str, int] = {}
            duplicates = []
            ycells: dict[str, Map[Any]] = {}
            with self.doc.transaction():
                for i, cell in enumerate(self.cells):
                    cid = _cell_id(cell)
                    if cid in index:
                        duplicates.append(i)
                    else:
                        index[cid] = i
                        if isinstance(cell, Map):
                            ycells[cid] = cell
            self._index, self._duplicates, self._ycells = index, duplicates, ycells
        return self._index

    # --- reading --------------------------------------------------------------------
    # Reads run in one transaction each: without one, pycrdt makes a transaction per
    # access (a cell read is several), which doubles what every execution pays here.

    def cell_ids(self) -> list[str]:
        with self.doc.transaction():
            return [_cell_id(c) for c in self.cells]

    def index_of(self, cell_id: str) -> int:
        index = self._ensure_index().get(cell_id)
        if index is None:
            raise RuntimedError(f"cell {cell_id!r} not found in this notebook", "not_found")
        return index

    def ycell(self, cell_id: str) -> Map[Any]:
        index = self.index_of(cell_id)
        cached = self._ycells.get(cell_id)
        if cached is not None:
            return cached
        with self.doc.transaction():
            cell: Map[Any] = self.cells[index]
            return cell

    def get_cell(self, cell_id: str) -> CellData:
        with self.doc.transaction():
            return self._to_cell(self.ycell(cell_id))

    def get_cells(self) -> list[CellData]:
        with self.doc.transaction():
            return [self._to_cell(c) for c in self.cells if isinstance(c, Map)]

    def get_outputs(self, cell_id: str) -> tuple[list[dict[str, Any]], int | None]:
        """A cell's outputs and execution count (what a result needs, without the rest
        of the cell)."""
        with self.doc.transaction():
            ycell = self.ycell(cell_id)
            outputs = ycell.get("outputs")
            count = _as_int(ycell.get("execution_count"))
            return (_ints(outputs.to_py()) if isinstance(outputs, Array) else []), count

    def cell_type(self, cell_id: str) -> str:
        with self.doc.transaction():
            return str(self.ycell(cell_id).get("cell_type", "code"))

    def get_source(self, cell_id: str) -> str:
        with self.doc.transaction():
            return str(self.ycell(cell_id)["source"])

    def metadata(self) -> dict[str, Any]:
        with self.doc.transaction():
            meta = self.meta.get("metadata")
            return _ints(meta.to_py()) if isinstance(meta, Map) else {}

    @staticmethod
    def _to_cell(ycell: Map[Any]) -> CellData:
        source = ycell.get("source")
        outputs = ycell.get("outputs")
        metadata = ycell.get("metadata")
        return CellData(
            id=str(ycell.get("id")),
            cell_type=str(ycell.get("cell_type", "code")),
            source=str(source) if source is not None else "",
            execution_count=_as_int(ycell.get("execution_count")),
            outputs=_ints(outputs.to_py()) if isinstance(outputs, Array) else [],
            metadata=_ints(metadata.to_py()) if isinstance(metadata, Map) else {},
        )

    # --- writing --------------------------------------------------------------------

    def ensure_meta(self) -> None:
        with self.doc.transaction():
            if "nbformat" not in self.meta:
                self.meta["nbformat"] = NBFORMAT
                self.meta["nbformat_minor"] = NBFORMAT_MINOR
            if not isinstance(self.meta.get("metadata"), Map):
                self.meta["metadata"] = Map()

    def insert_cell(
        self,
        index: int | None,
        source: str = "",
        cell_type: str = "code",
        cell_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        execution_count: int | None = None,
    ) -> str:
        if cell_type not in CELL_TYPES:
            raise RuntimedError(
                f"unknown cell type {cell_type!r}; use one of {CELL_TYPES}", "invalid_cell_type"
            )
        cell_id = cell_id or new_cell_id()
        ycell = self._new_ycell(
            cell_id, source, cell_type, metadata or {}, outputs or [], execution_count
        )
        with self.doc.transaction():
            n = len(self.cells)
            at = n if index is None else max(0, min(index if index >= 0 else n + index + 1, n))
            self.cells.insert(at, ycell)
        return cell_id

    @staticmethod
    def _new_ycell(
        cell_id: str,
        source: str,
        cell_type: str,
        metadata: dict[str, Any],
        outputs: list[dict[str, Any]],
        execution_count: int | None,
    ) -> Map[Any]:
        fields: dict[str, Any] = {
            "id": cell_id,
            "cell_type": cell_type,
            "source": Text(source),
            "metadata": Map(metadata),
        }
        if cell_type == "code":
            fields["execution_count"] = execution_count
            fields["outputs"] = Array(outputs)
        return Map(fields)

    def set_source(self, cell_id: str, text: str) -> None:
        """Replace the source with a minimal edit (common prefix and suffix kept), so
        concurrent edits elsewhere in the cell survive."""
        ytext: Text = self.ycell(cell_id)["source"]
        old = str(ytext)
        if old == text:
            return
        start = 0
        limit = min(len(old), len(text))
        while start < limit and old[start] == text[start]:
            start += 1
        end_old, end_new = len(old), len(text)
        while end_old > start and end_new > start and old[end_old - 1] == text[end_new - 1]:
            end_old -= 1
            end_new -= 1
        at, stop = _utf8_offset(old, start), _utf8_offset(old, end_old)
        with self.doc.transaction():
            if stop > at:
                del ytext[at:stop]
            if end_new > start:
                ytext.insert(at, text[start:end_new])

    def append_source(self, cell_id: str, text: str) -> None:
        ytext: Text = self.ycell(cell_id)["source"]
        with self.doc.transaction():
            ytext.insert(len(ytext), text)

    def insert_source(self, cell_id: str, index: int, text: str) -> None:
        ytext: Text = self.ycell(cell_id)["source"]
        old = str(ytext)
        if not 0 <= index <= len(old):
            raise RuntimedError(
                f"position {index} is outside the source ({len(old)} chars)", "invalid_position"
            )
        with self.doc.transaction():
            ytext.insert(_utf8_offset(old, index), text)

    def delete_cell(self, cell_id: str) -> None:
        with self.doc.transaction():
            del self.cells[self.index_of(cell_id)]

    def move_cell(self, cell_id: str, index: int) -> None:
        """Yjs has no move: delete and re-insert a copy with the same id. Concurrent moves
        of one cell can leave two copies; the daemon removes such duplicates."""
        cell = self.get_cell(cell_id)
        with self.doc.transaction():
            del self.cells[self.index_of(cell_id)]
            self.insert_cell(
                index,
                cell.source,
                cell.cell_type,
                cell.id,
                cell.metadata,
                cell.outputs,
                cell.execution_count,
            )

    def set_metadata(self, key: str, value: Any) -> None:
        self.ensure_meta()
        with self.doc.transaction():
            meta: Map[Any] = self.meta["metadata"]
            meta[key] = value

    def get_metadata(self, key: str) -> Any:
        return self.metadata().get(key)

    def remove_duplicate_cells(self) -> int:
        """Delete later cells whose id repeats an earlier one; returns how many."""
        self._ensure_index()
        doomed = list(self._duplicates)
        if doomed:
            with self.doc.transaction():
                for i in reversed(doomed):
                    del self.cells[i]
        return len(doomed)

    # --- nbformat -------------------------------------------------------------------

    def load_nbformat(self, nb: dict[str, Any]) -> None:
        """Fill an empty doc from an nbformat v4 dict (ids kept; missing ids generated)."""
        with self.doc.transaction():
            self.meta["nbformat"] = NBFORMAT
            self.meta["nbformat_minor"] = max(int(nb.get("nbformat_minor", 0)), NBFORMAT_MINOR)
            self.meta["metadata"] = Map(dict(nb.get("metadata", {})))
            for cell in nb.get("cells", []):
                source = cell.get("source", "")
                self.cells.append(
                    self._new_ycell(
                        str(cell.get("id") or new_cell_id()),
                        "".join(source) if isinstance(source, list) else str(source),
                        str(cell.get("cell_type", "code")),
                        dict(cell.get("metadata", {})),
                        list(cell.get("outputs", [])),
                        cell.get("execution_count"),
                    )
                )

    def to_nbformat(self) -> dict[str, Any]:
        cells = []
        for cell in self.get_cells():
            out: dict[str, Any] = {
                "id": cell.id,
                "cell_type": cell.cell_type,
                "metadata": cell.metadata,
                "source": cell.source,
            }
            if cell.cell_type == "code":
                out["execution_count"] = cell.execution_count
                out["outputs"] = cell.outputs
            cells.append(out)
        return {
            "nbformat": NBFORMAT,
            "nbformat_minor": NBFORMAT_MINOR,
            "metadata": self.metadata(),
            "cells": cells,
        }
