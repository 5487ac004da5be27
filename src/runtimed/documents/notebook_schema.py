"""Keeping a notebook document in the YNotebook shape, whatever peers send.

A client update may put anything anywhere: a number in ``cells``, a cell without an id,
a source that is not Text, metadata nested thousands deep. The daemon checks the cells an
update touched (all of them when a document is loaded) and repairs what is wrong, in one
transaction that every peer receives, so that reading and saving the notebook never
fails on a document the daemon accepted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from pycrdt import Array, Map, Text

from runtimed.documents.notebook import CELL_TYPES, NotebookDoc, new_cell_id

log = logging.getLogger(__name__)

#: Deeper metadata or outputs than this are replaced (real notebooks nest a handful).
MAX_DEPTH = 32
_CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def repair_cells(nb: NotebookDoc, indexes: Iterable[int] | None = None) -> int:
    """Repair the cells at ``indexes`` (None: every cell); returns how many repairs."""
    cells = nb.cells
    wanted = range(len(cells)) if indexes is None else sorted(set(indexes), reverse=True)
    repairs = 0
    with nb.doc.transaction():
        for index in sorted(wanted, reverse=True):  # deletions keep lower indexes valid
            if not 0 <= index < len(cells):
                continue
            cell = cells[index]
            if not isinstance(cell, Map):
                del cells[index]
                repairs += 1
                continue
            repairs += _repair_cell(cell)
    if repairs:
        log.warning("repaired %d schema violation(s) in a notebook document", repairs)
    return repairs


def _repair_cell(cell: Map[Any]) -> int:
    repairs = 0
    cell_id = cell.get("id")
    if not isinstance(cell_id, str) or not _CELL_ID.match(cell_id):
        cell["id"] = new_cell_id()
        repairs += 1
    cell_type = cell.get("cell_type")
    if cell_type not in CELL_TYPES:
        cell["cell_type"] = "raw"  # kept, never executed
        repairs += 1
    source = cell.get("source")
    if not isinstance(source, Text):
        cell["source"] = Text(source if isinstance(source, str) else "")
        repairs += 1
    metadata = cell.get("metadata")
    if not isinstance(metadata, Map) or _too_deep(metadata):
        cell["metadata"] = Map()
        repairs += 1
    if cell.get("cell_type") == "code":
        outputs = cell.get("outputs")
        if not isinstance(outputs, Array) or _too_deep(outputs):
            cell["outputs"] = Array()
            repairs += 1
        count = cell.get("execution_count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int | float)):
            cell["execution_count"] = None
            repairs += 1
    return repairs


def _too_deep(root: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``root`` nests deeper than ``limit`` (walked with a stack, not recursion)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, Map | dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, Array | list):
            stack.extend((v, depth + 1) for v in value)
    return False


def touched_cells(events: list[Any]) -> set[int]:
    """Indexes of cells a deep event batch of the cells array touched at cell level or
    below (text edits inside a source are left out: Text stays Text)."""
    touched: set[int] = set()
    for event in events:
        path = list(getattr(event, "path", []))
        if not path:  # the array itself: inserted cells
            index = 0
            for op in getattr(event, "delta", []):
                if "retain" in op:
                    index += int(op["retain"])
                elif "insert" in op:
                    touched.update(range(index, index + len(op["insert"])))
                    index += len(op["insert"])
            continue
        if isinstance(path[0], int) and not (len(path) == 2 and path[1] == "source"):
            touched.add(path[0])
    return touched
