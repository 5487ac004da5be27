"""IOPub messages -> nbformat v4 outputs, per cell, in order. Pure: no I/O, no asyncio.

An :class:`OutputStore` holds the outputs of every cell a kernel has written to. Feed it
each IOPub message of an execution with the id of the cell that execution belongs to::

    store = OutputStore()
    store.begin("cell-1")                       # new execution: outputs cleared
    for change in store.apply("cell-1", msg):   # msg: a jupyter_client message dict
        ...                                     # write store.outputs(change.cell_id)[change.index]

Every call returns :class:`OutputChange` records naming what moved (append / replace at
an index / clear), so a caller can coalesce document writes. ``update_display_data``
changes outputs by display id in any cell: :meth:`OutputStore.find_display` lists them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from runtimed.daemon.kernels.terminal import TerminalBuffer

Output = dict[str, Any]
"""One nbformat v4 output (``output_type`` plus the fields nbformat defines for it)."""

ChangeKind = Literal["append", "replace", "clear"]


@dataclass(frozen=True)
class OutputChange:
    """What one IOPub message did to a cell's outputs.

    ``append``: a new output at ``index``; ``replace``: the output at ``index`` changed
    (a stream grew, a display was updated); ``clear``: all outputs removed (``index`` -1).
    """

    cell_id: str
    kind: ChangeKind
    index: int = -1


@dataclass(frozen=True)
class DisplayLocation:
    """Where an output with a given display id currently is."""

    cell_id: str
    index: int


def message_type(msg: Mapping[str, Any]) -> str:
    """The message type of a jupyter_client message dict."""
    return str(msg.get("msg_type") or msg.get("header", {}).get("msg_type", ""))


def display_id_of(content: Mapping[str, Any]) -> str | None:
    """The ``transient.display_id`` of a display message's content, if any."""
    transient = content.get("transient") or {}
    value = transient.get("display_id")
    return str(value) if value is not None else None


class CellOutputs:
    """The outputs of one cell. Streams are terminal-emulated and merged."""

    def __init__(self, cell_id: str) -> None:
        self.cell_id = cell_id
        self._outputs: list[Output] = []
        self._streams: dict[int, TerminalBuffer] = {}
        self._dirty: set[int] = set()
        self._clear_pending = False
        self.execution_count: int | None = None

    @property
    def outputs(self) -> list[Output]:
        """The outputs, nbformat v4 shaped. The list is live: do not mutate it."""
        for index in self._dirty:
            self._outputs[index]["text"] = self._streams[index].text
        self._dirty.clear()
        return self._outputs

    def clear(self) -> list[OutputChange]:
        """Remove every output now."""
        self._outputs = []
        self._streams.clear()
        self._dirty.clear()
        self._clear_pending = False
        return [OutputChange(self.cell_id, "clear")]

    def clear_on_next_output(self) -> None:
        """``clear_output(wait=True)``: clear when the next output arrives."""
        self._clear_pending = True

    def index_of(self, output: Output) -> int | None:
        """The index of this exact output object, if it is still in the cell."""
        for index, candidate in enumerate(self._outputs):
            if candidate is output:
                return index
        return None

    def add_stream(self, name: str, text: str) -> list[OutputChange]:
        """Append stream text, merged into the last output when it is the same stream."""
        changes = self._before_output()
        last = len(self._outputs) - 1
        if last >= 0 and last in self._streams and self._outputs[last]["name"] == name:
            self._streams[last].feed(text)
            self._dirty.add(last)
            return [*changes, OutputChange(self.cell_id, "replace", last)]
        buffer = TerminalBuffer()
        buffer.feed(text)
        self._outputs.append({"output_type": "stream", "name": name, "text": buffer.text})
        self._streams[len(self._outputs) - 1] = buffer
        return [*changes, OutputChange(self.cell_id, "append", len(self._outputs) - 1)]

    def __len__(self) -> int:
        return len(self._outputs)

    def is_stream(self, index: int) -> bool:
        return index in self._streams

    def spill_stream(self, index: int, min_chars: int, max_line: int, everything: bool) -> str:
        """Remove and return the head of stream output ``index``'s text.

        The head is the completed lines once they reach ``min_chars`` (or any, with
        ``everything``) plus the start of a current line longer than ``max_line`` (or the
        whole line, with ``everything``). The output's ``text`` keeps the rest: the tail.
        The caller owns the head from then on (the daemon stores it as a blob).
        """
        buffer = self._streams.get(index)
        if buffer is None:
            return ""
        head = ""
        if everything or buffer.completed_chars >= min_chars:
            head = buffer.take_completed()
        head += buffer.take_line_head(0 if everything else max_line)
        if head:
            self._dirty.add(index)
        return head

    def add(self, output: Output) -> list[OutputChange]:
        """Append a non-stream output (display_data, execute_result, error)."""
        changes = self._before_output()
        self._outputs.append(output)
        return [*changes, OutputChange(self.cell_id, "append", len(self._outputs) - 1)]

    def replace_display(self, output: Output, content: Mapping[str, Any]) -> OutputChange | None:
        """Replace the data and metadata of ``output`` in place (update_display_data)."""
        index = self.index_of(output)
        if index is None:
            return None
        output["data"] = copy.deepcopy(dict(content.get("data") or {}))
        output["metadata"] = copy.deepcopy(dict(content.get("metadata") or {}))
        return OutputChange(self.cell_id, "replace", index)

    def _before_output(self) -> list[OutputChange]:
        if not self._clear_pending:
            return []
        return self.clear()


class OutputStore:
    """Outputs of many cells plus the display-id index that links them."""

    def __init__(self) -> None:
        self._cells: dict[str, CellOutputs] = {}
        self._displays: dict[str, list[tuple[str, Output]]] = {}

    def cell(self, cell_id: str) -> CellOutputs:
        """The outputs of ``cell_id`` (created empty on first use)."""
        cell = self._cells.get(cell_id)
        if cell is None:
            cell = self._cells[cell_id] = CellOutputs(cell_id)
        return cell

    def outputs(self, cell_id: str) -> list[Output]:
        """The current nbformat outputs of ``cell_id``."""
        return self.cell(cell_id).outputs

    def begin(self, cell_id: str) -> list[OutputChange]:
        """A new execution of ``cell_id`` starts: its old outputs go."""
        cell = self.cell(cell_id)
        cell.execution_count = None
        return cell.clear()

    def clear(self, cell_id: str) -> list[OutputChange]:
        """Clear a cell's outputs (a user's clear_outputs request)."""
        return self.cell(cell_id).clear()

    def forget(self, cell_id: str) -> None:
        """Drop a cell (deleted from the notebook)."""
        self._cells.pop(cell_id, None)

    def find_display(self, display_id: str) -> list[DisplayLocation]:
        """Every output, in any cell, that carries ``display_id``."""
        found: list[DisplayLocation] = []
        for cell_id, output in self._live_displays(display_id):
            index = self._cells[cell_id].index_of(output)
            if index is not None:
                found.append(DisplayLocation(cell_id, index))
        return found

    def apply(self, cell_id: str, msg: Mapping[str, Any]) -> list[OutputChange]:
        """Apply one IOPub message of an execution of ``cell_id``; unknown types are ignored."""
        content: Mapping[str, Any] = msg.get("content") or {}
        kind = message_type(msg)
        cell = self.cell(cell_id)
        if kind == "stream":
            return cell.add_stream(str(content.get("name", "stdout")), str(content.get("text", "")))
        if kind in ("display_data", "execute_result"):
            return self._add_display(cell, kind, content)
        if kind == "update_display_data":
            return self._update_display(content)
        if kind == "error":
            return cell.add(error_output(content))
        if kind == "clear_output":
            if content.get("wait"):
                cell.clear_on_next_output()
                return []
            return cell.clear()
        if kind == "execute_input" and content.get("execution_count") is not None:
            cell.execution_count = int(content["execution_count"])
        return []

    def _add_display(
        self, cell: CellOutputs, kind: str, content: Mapping[str, Any]
    ) -> list[OutputChange]:
        output: Output = {
            "output_type": kind,
            "data": copy.deepcopy(dict(content.get("data") or {})),
            "metadata": copy.deepcopy(dict(content.get("metadata") or {})),
        }
        if kind == "execute_result":
            output["execution_count"] = content.get("execution_count")
        display_id = display_id_of(content)
        if display_id is not None:
            self._displays.setdefault(display_id, []).append((cell.cell_id, output))
        return cell.add(output)

    def _update_display(self, content: Mapping[str, Any]) -> list[OutputChange]:
        display_id = display_id_of(content)
        if display_id is None:
            return []
        changes: list[OutputChange] = []
        for cell_id, output in self._live_displays(display_id):
            change = self._cells[cell_id].replace_display(output, content)
            if change is not None:
                changes.append(change)
        return changes

    def _live_displays(self, display_id: str) -> list[tuple[str, Output]]:
        """The registered outputs for ``display_id`` still present; prunes the rest."""
        live = [
            (cell_id, output)
            for cell_id, output in self._displays.get(display_id, [])
            if cell_id in self._cells and self._cells[cell_id].index_of(output) is not None
        ]
        if live:
            self._displays[display_id] = live
        else:
            self._displays.pop(display_id, None)
        return live


def error_output(content: Mapping[str, Any]) -> Output:
    """An nbformat error output from error / execute_reply content."""
    return {
        "output_type": "error",
        "ename": str(content.get("ename", "")),
        "evalue": str(content.get("evalue", "")),
        "traceback": [str(line) for line in content.get("traceback") or []],
    }
