"""OutputWriter: kernel output into a notebook document, with large parts in blobs.

IOPub messages go through the pure ``OutputStore`` (terminal emulation, display updates,
clear_output); the changed outputs are written into the document every few ms in one
transaction. Streams keep only a live tail in the document: once their completed lines
reach SPILL_CHUNK characters they move to a blob of their own (written once, never again)
and the output's text becomes ``[ref, ref, ..., "tail"]``; a line longer than
SPILL_LINE_CAP without a newline spills too. When the execution ends, a tail over the
blob threshold becomes a blob as well. Big and binary MIME payloads become references.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable
from typing import Any, Protocol

from pycrdt import Array

from runtimed.daemon.execution.large_outputs import SpilledText
from runtimed.daemon.kernels import OutputChange, OutputStore
from runtimed.documents.blob_refs import BlobRef, make_ref, refer_payloads
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError

log = logging.getLogger(__name__)

FLUSH_DELAY_SECS = 0.005
SPILL_CHUNK = 256 * 1024
SPILL_LINE_CAP = 4 * SPILL_CHUNK


class BlobSink(Protocol):
    """Where payloads go: returns the SHA-256 of the stored bytes."""

    def put(self, data: bytes, media_type: str) -> str: ...


class OutputWriter:
    """The outputs of one room's cells, kept in step with its notebook document."""

    def __init__(
        self,
        nb: NotebookDoc,
        blobs: BlobSink | None = None,
        blob_threshold: Callable[[], int] = lambda: 1024,
    ) -> None:
        self.nb = nb
        self.blobs = blobs
        self.blob_threshold = blob_threshold
        self.store = OutputStore()
        #: Takes the outputs an Output widget captures (widgets/output_capture.py).
        self.capture: Callable[[dict[str, Any]], bool] | None = None
        self._spilled: dict[tuple[str, int], list[Any]] = {}  # refs (text if unstored)
        self._dirty: dict[str, set[int]] = {}
        self._counts: dict[str, int] = {}  # written with the next batch
        self._last_timed = float("-inf")  # when the last batch was written
        self._flush_handle: asyncio.Handle | None = None

    # --- an execution's life -------------------------------------------------------------

    def begin(self, cell_id: str) -> None:
        """A cell starts running: its old outputs and count go, in one transaction."""
        with self.nb.doc.transaction():
            self._apply(self.store.begin(cell_id))
            self.set_execution_count(cell_id, None)
            self.flush()

    def on_message(self, cell_id: str, msg: dict[str, Any]) -> None:
        """One IOPub message of the cell's execution."""
        if self.capture is not None and self.capture(msg):
            return
        spilled = (msg.get("content") or {}).get("text")
        if isinstance(spilled, SpilledText):
            self._add_spilled(cell_id, msg, spilled)
            return
        self._apply(self.store.apply(cell_id, msg))
        self._spill_now(cell_id, msg)

    def _add_spilled(self, cell_id: str, msg: dict[str, Any], spilled: SpilledText) -> None:
        """Stream text that came stored (a huge message): what the stream holds goes
        first, then the stored parts, then the live tail."""
        plain = {**msg, "content": {**msg["content"], "text": ""}}
        self._apply(self.store.apply(cell_id, plain))
        cell = self.store.cell(cell_id)
        index = len(cell) - 1
        if self.blobs is not None:
            self._spill_one(cell_id, index, everything=True)
        self._spilled.setdefault((cell_id, index), []).extend(dict(r) for r in spilled.refs)
        self._dirty.setdefault(cell_id, set()).add(index)
        if spilled.tail:
            self._apply(self.store.apply(cell_id, {**plain, "content": {
                **plain["content"], "text": spilled.tail}}))  # fmt: skip

    def add(self, cell_id: str, output: dict[str, Any]) -> None:
        """An output of the daemon's own (e.g. the kernel died)."""
        self._apply(self.store.cell(cell_id).add(output))

    def finish(self, cell_id: str, execution_count: int | None, set_count: bool) -> None:
        """The execution ended: every remaining output and the count, in one transaction."""
        with self.nb.doc.transaction():
            if set_count:
                self.set_execution_count(cell_id, execution_count)
            self.flush(final_cell=cell_id)

    def execution_count(self, cell_id: str) -> int | None:
        """The count the kernel announced for the cell (execute_input), if any."""
        return self.store.cell(cell_id).execution_count

    def clear(self, cell_id: str) -> None:
        self.nb.get_cell(cell_id)  # raises "not found"
        self._apply(self.store.clear(cell_id) or [OutputChange(cell_id, "clear")])
        self.flush()

    def set_execution_count(self, cell_id: str, count: int | None) -> None:
        with contextlib.suppress(RuntimedError):
            ycell = self.nb.ycell(cell_id)
            if ycell.get("execution_count") != count:
                ycell["execution_count"] = count

    def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    # --- writing -------------------------------------------------------------------------

    def _apply(self, changes: list[OutputChange]) -> None:
        for change in changes:
            if change.kind == "clear":
                for key in [k for k in self._spilled if k[0] == change.cell_id]:
                    del self._spilled[key]
            dirty = self._dirty.setdefault(change.cell_id, set())
            dirty.add(-1 if change.kind == "clear" else change.index)
        if changes and self._flush_handle is None:
            # The first change after a quiet spell is written at the end of this loop turn
            # (a quick cell's result then reaches the document while the kernel still
            # sends its reply and idle, not after); more within FLUSH_DELAY_SECS wait.
            loop = asyncio.get_running_loop()
            if loop.time() - self._last_timed >= FLUSH_DELAY_SECS:
                self._flush_handle = loop.call_soon(self._timed_flush)
            else:
                self._flush_handle = loop.call_later(FLUSH_DELAY_SECS, self._timed_flush)

    def _timed_flush(self) -> None:
        """A batch of changes: with the count the cells' execute_input announced."""
        self._last_timed = asyncio.get_running_loop().time()
        for cell_id in self._dirty:
            count = self.store.cell(cell_id).execution_count
            if count is not None:
                self._counts[cell_id] = count
        self.flush()

    def flush(self, final_cell: str | None = None) -> None:
        """Write pending output changes into the document: one transaction for all cells.

        ``final_cell``: that cell's execution ended; its streams' tails may become blobs.
        """
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if final_cell is not None and self.blobs is not None:
            self._finalize_streams(final_cell)
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        counts, self._counts = self._counts, {}
        with self.nb.doc.transaction():
            for cell_id, indexes in dirty.items():
                self._spill_streams(cell_id, indexes)
                self._write_outputs(cell_id, indexes)
            for cell_id, count in counts.items():
                self.set_execution_count(cell_id, count)

    def _write_outputs(self, cell_id: str, indexes: set[int]) -> None:
        try:
            ycell = self.nb.ycell(cell_id)
        except RuntimedError:
            return  # deleted while running
        array = ycell.get("outputs")
        if not isinstance(array, Array):
            ycell["outputs"] = array = Array()
        outputs = self.store.outputs(cell_id)
        have = len(array)
        if -1 in indexes or len(outputs) < have:
            array.clear()
            array.extend([self._doc_output(cell_id, i, o) for i, o in enumerate(outputs)])
            return
        for index in sorted(i for i in indexes if i < have):
            array[index] = self._doc_output(cell_id, index, outputs[index])
        if len(outputs) > have:
            array.extend(
                [self._doc_output(cell_id, have + i, o) for i, o in enumerate(outputs[have:])]
            )

    # --- blobs ---------------------------------------------------------------------------

    def _put(self, data: bytes, media_type: str) -> BlobRef | None:
        assert self.blobs is not None
        try:
            return make_ref(self.blobs.put(data, media_type), len(data), media_type)
        except RuntimedError as exc:
            log.warning("output payload not stored: %s", exc.message)
            return None
        except OSError:
            log.exception("cannot write a blob; the payload stays inline")
            return None

    def _spill_now(self, cell_id: str, msg: dict[str, Any]) -> None:
        """Spill a fast stream as it arrives, so the daemon never holds more than about
        SPILL_CHUNK of it (the flush timer may lag behind a flood of messages)."""
        msg_type = msg.get("msg_type", msg.get("header", {}).get("msg_type"))
        if self.blobs is None or msg_type != "stream":
            return
        cell = self.store.cell(cell_id)
        last = len(cell) - 1
        if last >= 0 and cell.is_stream(last):
            self._spill_one(cell_id, last, everything=False)

    def _spill_streams(self, cell_id: str, indexes: set[int]) -> None:
        if self.blobs is None:
            return
        cell = self.store.cell(cell_id)
        for index in indexes:
            if index >= 0 and cell.is_stream(index):
                self._spill_one(cell_id, index, everything=False)

    def _spill_one(self, cell_id: str, index: int, everything: bool) -> None:
        cell = self.store.cell(cell_id)
        head = cell.spill_stream(index, SPILL_CHUNK, SPILL_LINE_CAP, everything)
        if not head:
            return
        ref = self._put(head.encode(), "text/plain")
        ref_or_text: Any = head if ref is None else ref  # keep the text rather than lose it
        self._spilled.setdefault((cell_id, index), []).append(ref_or_text)

    def _finalize_streams(self, cell_id: str) -> None:
        cell = self.store.cell(cell_id)
        threshold = self.blob_threshold()
        for index, output in enumerate(cell.outputs):
            if output.get("output_type") != "stream" or not cell.is_stream(index):
                continue
            if len(str(output.get("text", ""))) > threshold:
                self._spill_one(cell_id, index, everything=True)
                self._dirty.setdefault(cell_id, set()).add(index)

    def _doc_output(self, cell_id: str, index: int, output: dict[str, Any]) -> dict[str, Any]:
        """The document's form of an output: big and binary payloads as blob references."""
        out = copy.deepcopy(output)
        if self.blobs is None:
            return out
        spilled = self._spilled.get((cell_id, index))
        if spilled and out.get("output_type") == "stream":
            tail = str(out.get("text", ""))
            parts = [copy.deepcopy(p) for p in spilled]
            out["text"] = [*parts, tail] if tail else (parts[0] if len(parts) == 1 else parts)
        data = out.get("data")
        if isinstance(data, dict):
            self._refer_payloads(data)
        return out

    def _refer_payloads(self, data: dict[str, Any]) -> None:
        refer_payloads(data, self._put_digest, self.blob_threshold())

    def _put_digest(self, data: bytes, media_type: str) -> str | None:
        ref = self._put(data, media_type)
        return None if ref is None else str(ref["blob"])
