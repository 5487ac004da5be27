"""AsyncSession: the notebook API on a room connection (``Session`` is its blocking twin).

Every edit is local-first: it applies to the local replica, ships the update, then does a
round trip, so when it returns the daemon has applied and logged the edit. With the
daemon gone (a restart, a crash) an edit still applies locally and returns; the session
reconnects by itself and the change reaches the daemon exactly once (``sync()`` waits
for that).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import pycrdt

from runtimed import timeline
from runtimed.client.blobs import AsyncBlobClient
from runtimed.client.input_answers import InputAnswers, StdinSource
from runtimed.client.output_prefetch import OutputPrefetch
from runtimed.client.results import Cell, ExecutionResult
from runtimed.client.room_connection import (
    CONNECT_TIMEOUT,
    REQUEST_TIMEOUT,
    EventListener,
    RoomConnection,
)
from runtimed.documents.blob_refs import output_refs, resolve_output
from runtimed.documents.notebook import CellData
from runtimed.documents.runtime import RuntimeDoc
from runtimed.documents.widgets import blob_digests, resolve_state
from runtimed.errors import RuntimedError

LAUNCH_TIMEOUT = 900.0  # may build an env from the notebook's own dependencies

__all__ = ["CONNECT_TIMEOUT", "REQUEST_TIMEOUT", "AsyncSession", "EventListener"]


class AsyncSession(RoomConnection):
    """A notebook session on asyncio. ``notebook_id=None`` opens a new untitled notebook
    with a random id; ``AsyncSession.open(path)`` a notebook file."""

    #: False once the daemon answered that it has no ``run_code`` (an older daemon).
    _daemon_runs_code = True

    # --- document API ------------------------------------------------------------------

    async def create_cell(
        self, source: str = "", cell_type: str = "code", index: int | None = None
    ) -> str:
        """Insert a cell (at the end when ``index`` is None); returns its ``cell-<uuid>`` id."""
        await self._before_edit()
        cell_id = self._nb.insert_cell(index, source, cell_type)
        await self._after_edit()
        return cell_id

    async def get_cell(self, cell_id: str) -> Cell:
        """One cell; its outputs are ``Output``s with blob references resolved."""
        await self._ensure_connected()
        cell = self._nb.get_cell(cell_id)
        return Cell.from_data(cell, await self._prefetch(cell.outputs))

    async def get_cells(self) -> list[Cell]:
        """Every cell, in document order (outputs as in ``get_cell``)."""
        await self._ensure_connected()
        cells = self._nb.get_cells()
        fetch = await self._prefetch([o for c in cells for o in c.outputs])
        return [Cell.from_data(c, fetch) for c in cells]

    async def set_source(self, cell_id: str, text: str) -> None:
        await self._before_edit()
        self._nb.set_source(cell_id, text)
        await self._after_edit()

    async def append_source(self, cell_id: str, text: str) -> None:
        await self._before_edit()
        self._nb.append_source(cell_id, text)
        await self._after_edit()

    async def insert_source(self, cell_id: str, index: int, text: str) -> None:
        """Insert ``text`` at character ``index`` of the cell's source."""
        await self._before_edit()
        self._nb.insert_source(cell_id, index, text)
        await self._after_edit()

    async def move_cell(self, cell_id: str, index: int) -> None:
        await self._before_edit()
        self._nb.move_cell(cell_id, index)
        await self._after_edit()

    async def delete_cell(self, cell_id: str) -> None:
        await self._before_edit()
        self._nb.delete_cell(cell_id)
        await self._after_edit()

    async def set_metadata(self, key: str, value: Any) -> None:
        """Set a key of the notebook's metadata (JSON-serialisable value)."""
        json.dumps(value)
        await self._before_edit()
        self._nb.set_metadata(key, value)
        await self._after_edit()

    async def get_metadata(self, key: str) -> Any:
        await self._ensure_connected()
        return self._nb.get_metadata(key)

    async def sync(self, timeout: float | None = None) -> None:
        """Wait until the daemon has durably applied every edit made so far (reconnecting
        as needed); RuntimedError ``timeout`` if that takes longer than ``timeout``."""
        await self._synced_with_daemon(timeout)

    async def save(self, path: str | Path | None = None, force: bool = False) -> str:
        """Write the notebook as .ipynb (to its own file when ``path`` is None); returns
        the path written. Its own file is not overwritten when it changed on disk since
        it was opened (error ``file_changed``) unless ``force``."""
        target = os.path.abspath(path) if path is not None else None
        result = await self.request("save", path=target, force=force)
        return str(result["path"])

    # --- kernel and execution API ------------------------------------------------------

    @property
    def kernel(self) -> dict[str, Any]:
        """The room's kernel state from the runtime document (lifecycle, activity, ...)."""
        return RuntimeDoc(self._runtime).kernel()

    @property
    def kernel_started(self) -> bool:
        return self.kernel.get("lifecycle") == "running"

    @property
    def env_source(self) -> str | None:
        """The resolved environment source of the running kernel, e.g. ``uv:prewarmed``."""
        value = self.kernel.get("env_source")
        return str(value) if value else None

    async def start_kernel(
        self,
        kernel_type: str = "python",
        env_source: str = "auto",
        notebook_path: str | None = None,
    ) -> dict[str, Any]:
        """Start the room's kernel (a no-op when one runs); returns the kernel's state."""
        path = os.path.abspath(notebook_path) if notebook_path else None
        result: dict[str, Any] = await self.request(
            "launch_kernel",
            LAUNCH_TIMEOUT,
            kernel_type=kernel_type,
            env_source=env_source,
            notebook_path=path,
        )
        return result

    async def queue_cell(self, cell_id: str, stdin: bool = False) -> str:
        """Queue a cell for execution and return its execution id at once. ``stdin``:
        this session answers the cell's ``input()`` (events ``input_request``, answered
        with :meth:`send_input`); otherwise ``input()`` raises StdinNotAvailable."""
        result = await self.request("execute_cell", cell_id=cell_id, stdin=stdin)
        return str(result["execution_id"])

    async def send_input(self, execution_id: str, value: str) -> None:
        """Answer the ``input_request`` of an execution this session queued with stdin
        ("\\x04" is end of input: ``input()`` raises EOFError)."""
        await self.request("input_reply", execution_id=execution_id, value=value)

    async def execute_cell(
        self, cell_id: str, timeout: float | None = None, stdin: StdinSource | None = None
    ) -> ExecutionResult:
        """Run a cell (its source as the document holds it) and wait for its outputs.

        Starts the kernel first when none runs. ``stdin`` answers the cell's ``input()``
        and ``getpass()``: a callable given each prompt (may be async), or an iterable of
        answers (once used up, ``input()`` raises EOFError). Without it ``input()``
        raises StdinNotAvailable.
        """

        async def queue(asks: bool) -> tuple[str, str]:
            return await self.queue_cell(cell_id, asks), cell_id

        return await self._execute(queue, timeout, stdin)

    async def _execute(
        self,
        queue: Callable[[bool], Awaitable[tuple[str, str]]],
        timeout: float | None,
        stdin: StdinSource | None,
    ) -> ExecutionResult:
        """Queue with ``queue(stdin_wanted)`` (-> execution id, cell id) and wait for the
        result, answering ``input()`` from ``stdin``; the cell's stored outputs are
        fetched as they appear."""
        answers = InputAnswers(stdin, self.send_input) if stdin is not None else None
        if answers is not None:
            self.add_listener(answers.on_event)
        try:
            execution_id, cell_id = await queue(answers is not None)
            if answers is not None:
                answers.follow(execution_id)
            self._prefetcher.watch(cell_id)
            try:
                return await self.wait_for_execution(execution_id, timeout)
            finally:
                self._prefetcher.unwatch(cell_id)
        finally:
            if answers is not None:
                self.remove_listener(answers.on_event)
                await answers.close()

    async def run(
        self, code: str, timeout: float | None = None, stdin: StdinSource | None = None
    ) -> ExecutionResult:
        """Append a code cell with ``code`` and execute it (``stdin``: see
        :meth:`execute_cell`)."""
        timeline.stamp("run.loop")
        return await self._execute(lambda asks: self._run_code(code, asks), timeout, stdin)

    async def _run_code(self, code: str, stdin: bool) -> tuple[str, str]:
        """The daemon appends the cell and queues it (``run_code``): the kernel starts
        without waiting for this client's edit to reach the daemon. A daemon older than
        ``run_code``: the cell is appended here, then queued (the request travels behind
        the cell's update frame)."""
        if self._daemon_runs_code:
            try:
                result = await self.request("run_code", code=code, stdin=stdin)
                return str(result["execution_id"]), str(result["cell_id"])
            except RuntimedError as exc:
                if exc.code != "unknown_request":
                    raise
                self._daemon_runs_code = False
        await self._ensure_connected()
        cell_id = self._nb.insert_cell(None, code)
        return await self.queue_cell(cell_id, stdin), cell_id

    async def run_all(
        self, timeout: float | None = None, stop_on_error: bool = True
    ) -> list[ExecutionResult]:
        """Run every code cell in order. An error cancels the cells after it, unless
        ``stop_on_error`` is False (then every cell runs)."""
        result = await self.request("run_all_cells", stop_on_error=stop_on_error)
        return [await self.wait_for_execution(eid, timeout) for eid in result["execution_ids"]]

    async def wait_for_execution(
        self, execution_id: str, timeout: float | None = None
    ) -> ExecutionResult:
        event = await self._executions.wait(execution_id, timeout)
        timeline.stamp("result.woke")
        result = await self._result(event)
        timeline.stamp("result.built")
        return result

    async def _result(self, event: dict[str, Any]) -> ExecutionResult:
        cell_id = str(event["cell_id"])
        try:
            outputs, count = self._nb.get_outputs(cell_id)
        except RuntimedError:
            outputs, count = [], None
        # A result has no source: the cell is read without it.
        cell = CellData(cell_id, "code", "", count, outputs)
        return ExecutionResult.from_cell(cell, event, await self._prefetch(cell.outputs))

    # --- blobs -------------------------------------------------------------------------

    @cached_property
    def _prefetcher(self) -> OutputPrefetch:
        return OutputPrefetch(lambda: self._nb, self.get_blob)

    def _observe(self) -> None:
        super()._observe()
        self._nb.doc.observe(self._on_any_update)

    def _on_any_update(self, event: pycrdt.TransactionEvent) -> None:
        if self._prefetcher.watching:  # only then is the update read
            self._prefetcher.on_update(event.update)

    async def get_blob(self, digest: str) -> bytes:
        """A blob's bytes, from the daemon's blob store (cached by hash)."""
        if self._blobs is None:
            self._blobs = AsyncBlobClient(self._address)
        return await self._blobs.get(digest)

    async def _prefetch(self, outputs: list[dict[str, Any]]) -> Callable[[str], bytes]:
        """Fetch every blob ``outputs`` refer to; returns a lookup for resolving them."""
        fetched: dict[str, bytes] = {}
        timeline.stamp("prefetch")
        for output in outputs:
            for ref in output_refs(output):
                if ref["blob"] not in fetched:
                    fetched[ref["blob"]] = await self._prefetcher.get(ref["blob"])
        timeline.stamp("prefetched")
        return fetched.__getitem__

    async def get_outputs(self, cell_id: str) -> list[dict[str, Any]]:
        """A cell's outputs with blob references resolved: ordinary nbformat outputs."""
        await self._ensure_connected()
        outputs = self._nb.get_cell(cell_id).outputs
        fetch = await self._prefetch(outputs)
        return [resolve_output(o, fetch) for o in outputs]

    # --- widgets -------------------------------------------------------------------------

    async def widgets(self) -> dict[str, dict[str, Any]]:
        """Every live widget of the kernel as the daemon has it now: ``{model_id:
        state}`` (ipywidgets' model state; binary values as bytes)."""
        await self.request("sync")  # the runtime document is current once it answers
        entries = RuntimeDoc(self._runtime).widgets.entries()
        fetched = {digest: await self.get_blob(digest) for digest in blob_digests(entries)}
        return {m: resolve_state(e, fetched.__getitem__) for m, e in entries.items()}

    async def set_widget_state(self, model_id: str, state: dict[str, Any]) -> None:
        """Change a widget (``{"value": 42}``): the kernel's model gets it once (its
        observers run) and every other client sees it. JSON values only."""
        await self.request("set_widget_state", model_id=model_id, state=state)

    async def send_widget_message(self, model_id: str, content: Any) -> None:
        """A custom message to a widget in the kernel: ``{"event": "click"}`` clicks a
        Button (its ``on_click`` handlers run)."""
        await self.request("send_widget_message", model_id=model_id, content=content)

    async def interrupt(self) -> int:
        """Interrupt the running cell and clear the queue; returns how many were cancelled."""
        result = await self.request("interrupt")
        return int(result["cancelled"])

    async def restart_kernel(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("restart_kernel", LAUNCH_TIMEOUT)
        return result

    async def shutdown_kernel(self) -> None:
        await self.request("shutdown_kernel")

    async def clear_outputs(self, cell_id: str) -> None:
        await self.request("clear_outputs", cell_id=cell_id)

    async def inspect(
        self, code: str, cursor_pos: int | None = None, detail_level: int = 0
    ) -> dict[str, Any]:
        """The kernel's help on the name at ``cursor_pos`` (``obj?``; ``detail_level=1``:
        ``obj??``): ``{found, data (a mime bundle), metadata}``."""
        pos = len(code) if cursor_pos is None else cursor_pos
        result: dict[str, Any] = await self.request(
            "inspect", code=code, cursor_pos=pos, detail_level=detail_level
        )
        return result

    async def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        """Completions for ``code`` at ``cursor_pos`` (default: the end)."""
        pos = len(code) if cursor_pos is None else cursor_pos
        result: dict[str, Any] = await self.request("complete", code=code, cursor_pos=pos)
        return result

    async def trust(
        self, approve: bool = True, packages: list[str] | None = None, env_source: str = "auto"
    ) -> dict[str, Any]:
        """Approve this notebook's dependencies for installing (``packages``: only these
        names); ``approve=False`` only lists them. Returns ``{env_source, untrusted,
        approved, note}``: ``untrusted`` is what still needs approval, each with ``name``,
        ``spec``, ``origin``, ``channel`` (conda) and ``warnings`` (look-alike names of
        popular packages, direct URLs, local paths). A kernel start fails with
        ``untrusted_dependencies`` until nothing is untrusted."""
        result: dict[str, Any] = await self.request(
            "trust", approve=approve, packages=packages, env_source=env_source
        )
        return result
