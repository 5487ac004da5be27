"""Session: the blocking twin of AsyncSession.

It runs one AsyncSession on an event loop in a private daemon thread and waits for each
call, so both flavours share every line of protocol code. The thread never keeps a
program from exiting, even when a session is never closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pycrdt import Doc

from runtimed import timeline
from runtimed.client.async_session import AsyncSession, EventListener
from runtimed.client.daemon_address import AddressLike, daemon_address
from runtimed.client.input_answers import StdinSource
from runtimed.client.results import Cell, ExecutionResult
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError

T = TypeVar("T")


class _LoopThread:
    """An asyncio loop in a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="runtimed-session", daemon=True
        )
        self._thread.start()

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "Session methods cannot be called from its own event loop; "
                "use AsyncSession inside async code"
            )
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        async def run() -> None:
            # The caller is woken from here, as the coroutine returns: not a loop step
            # later, from the task's done callback (run_coroutine_threadsafe's way).
            try:
                done.set_result(await make())
            except BaseException as exc:
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(self._start, run())
        return done.result()

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(work)
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class Session:
    """A notebook session for scripts: ``with Session("my-notebook") as s: ...``."""

    def __init__(
        self,
        notebook_id: str | None = None,
        socket_path: AddressLike = None,
        *,
        path: str | Path | None = None,
        client_name: str | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        """``url``/``token``: a daemon over HTTP (``/ws``) instead of the Unix socket
        (token default: RUNTIMED_TOKEN, RUNTIMED_TOKEN_FILE, or the local token file)."""
        self._portal: _LoopThread | None = None
        self._closed = False
        self._args = (notebook_id, daemon_address(socket_path, url, token), path, client_name)
        self._async: AsyncSession | None = None
        self._start_portal()

    def _start_portal(self) -> None:
        self._portal = _LoopThread()
        notebook_id, address, path, client_name = self._args
        if self._async is not None:  # rejoining after close(): the same notebook
            notebook_id, path = self._async.notebook_id, self._async.path

        async def make() -> AsyncSession:
            return AsyncSession(notebook_id, address, path=path, client_name=client_name)

        self._async = self._portal.call(make)

    @classmethod
    def open(cls, path: str | Path, socket_path: AddressLike = None, **where: str | None) -> Self:
        """A session on the notebook file at ``path`` (created on save if missing);
        ``where``: ``url=`` and ``token=`` for a daemon over HTTP (the path is its)."""
        return cls(socket_path=socket_path, path=path, **where)

    def _call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        if self._portal is None:
            self._reopen()
        assert self._portal is not None
        return self._portal.call(lambda: fn(*args, **kwargs))

    @property
    def _session(self) -> AsyncSession:
        if self._async is None:
            self._reopen()
        assert self._async is not None
        return self._async

    def _reopen(self) -> None:
        if self._closed:
            raise RuntimedError(
                "this session is closed; call connect() to rejoin, or open a new Session",
                "closed",
            )
        self._start_portal()

    # --- identity and connection ------------------------------------------------------

    @property
    def notebook_id(self) -> str:
        return self._session.notebook_id

    @property
    def path(self) -> str | None:
        return self._session.path

    @property
    def is_connected(self) -> bool:
        return self._async is not None and self._async.is_connected

    @property
    def document(self) -> NotebookDoc:
        return self._session.document

    @property
    def runtime_doc(self) -> Doc[Any]:
        """The local replica of the room's runtime document (read it with RuntimeDoc)."""
        return self._session.runtime_doc

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"<Session notebook_id={self.notebook_id!r} {state}>"

    def connect(self) -> Self:
        """Join the room (sessions also connect on first use); rejoins after close()."""
        self._closed = False
        if self._portal is None:
            self._start_portal()
        self._call(self._session.connect)
        return self

    def close(self) -> None:
        """Leave the room and stop this session's thread. The daemon keeps the notebook."""
        self._closed = True
        if self._portal is None:
            return
        with contextlib.suppress(Exception):
            self._portal.call(self._session.close)
        portal, self._portal = self._portal, None  # the AsyncSession stays, for its identity
        portal.stop()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Never block here (it may run at interpreter exit, with the loop thread gone):
        # stop the loop; the daemon notices the closed connection.
        portal = self._portal
        if portal is not None:
            with contextlib.suppress(Exception):
                portal.loop.call_soon_threadsafe(portal.loop.stop)

    # --- document API ------------------------------------------------------------------

    def create_cell(
        self, source: str = "", cell_type: str = "code", index: int | None = None
    ) -> str:
        """Insert a cell (at the end when ``index`` is None); returns its id."""
        return self._call(self._session.create_cell, source, cell_type, index)

    def get_cell(self, cell_id: str) -> Cell:
        return self._call(self._session.get_cell, cell_id)

    def get_outputs(self, cell_id: str) -> list[dict[str, Any]]:
        """A cell's outputs with blob references resolved (ordinary nbformat)."""
        return self._call(self._session.get_outputs, cell_id)

    def get_blob(self, digest: str) -> bytes:
        return self._call(self._session.get_blob, digest)

    def widgets(self) -> dict[str, dict[str, Any]]:
        """Every live widget of the kernel: ``{model_id: state}`` (see
        :meth:`AsyncSession.widgets`)."""
        return self._call(self._session.widgets)

    def set_widget_state(self, model_id: str, state: dict[str, Any]) -> None:
        """Change a widget (``{"value": 42}``): the kernel gets it once, every client
        sees it."""
        self._call(self._session.set_widget_state, model_id, state)

    def send_widget_message(self, model_id: str, content: Any) -> None:
        """A custom message to a widget in the kernel (``{"event": "click"}`` clicks a
        Button)."""
        self._call(self._session.send_widget_message, model_id, content)

    def get_cells(self) -> list[Cell]:
        """Every cell, in document order."""
        return self._call(self._session.get_cells)

    def set_source(self, cell_id: str, text: str) -> None:
        self._call(self._session.set_source, cell_id, text)

    def append_source(self, cell_id: str, text: str) -> None:
        self._call(self._session.append_source, cell_id, text)

    def insert_source(self, cell_id: str, index: int, text: str) -> None:
        self._call(self._session.insert_source, cell_id, index, text)

    def move_cell(self, cell_id: str, index: int) -> None:
        self._call(self._session.move_cell, cell_id, index)

    def delete_cell(self, cell_id: str) -> None:
        self._call(self._session.delete_cell, cell_id)

    def set_metadata(self, key: str, value: Any) -> None:
        self._call(self._session.set_metadata, key, value)

    def get_metadata(self, key: str) -> Any:
        return self._call(self._session.get_metadata, key)

    def sync(self, timeout: float | None = None) -> None:
        """Wait until the daemon has durably applied every edit made so far (reconnecting
        as needed); RuntimedError ``timeout`` if that takes longer than ``timeout``."""
        self._call(self._session.sync, timeout)

    def save(self, path: str | Path | None = None, force: bool = False) -> str:
        """Write the notebook as .ipynb (to its own file when ``path`` is None); returns
        the path written. Its own file is not overwritten when it changed on disk since
        it was opened (error ``file_changed``) unless ``force``."""
        return self._call(self._session.save, path, force)

    def request(self, kind: str, timeout: float | None = 60.0, **params: Any) -> Any:
        return self._call(self._session.request, kind, timeout, **params)

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` (on the session's thread) for each room event."""
        self._session.add_listener(listener)

    def remove_listener(self, listener: EventListener) -> None:
        self._session.remove_listener(listener)

    # --- kernel and execution API ------------------------------------------------------

    @property
    def kernel(self) -> dict[str, Any]:
        """The room's kernel state (lifecycle, activity, env_source, error, ...)."""
        return self._call(self._kernel_state)

    async def _kernel_state(self) -> dict[str, Any]:
        return self._session.kernel

    @property
    def kernel_started(self) -> bool:
        return self.kernel.get("lifecycle") == "running"

    @property
    def env_source(self) -> str | None:
        value = self.kernel.get("env_source")
        return str(value) if value else None

    def start_kernel(
        self,
        kernel_type: str = "python",
        env_source: str = "auto",
        notebook_path: str | None = None,
    ) -> dict[str, Any]:
        """Start the room's kernel (a no-op when one runs)."""
        return self._call(self._session.start_kernel, kernel_type, env_source, notebook_path)

    def queue_cell(self, cell_id: str, stdin: bool = False) -> str:
        """Queue a cell and return its execution id at once (``stdin``: this session
        answers its ``input()`` with :meth:`send_input`)."""
        return self._call(self._session.queue_cell, cell_id, stdin)

    def send_input(self, execution_id: str, value: str) -> None:
        """Answer the ``input_request`` of an execution queued with ``stdin=True``."""
        self._call(self._session.send_input, execution_id, value)

    def execute_cell(
        self, cell_id: str, timeout: float | None = None, stdin: StdinSource | None = None
    ) -> ExecutionResult:
        """Run a cell and wait for its outputs (starts a kernel if none runs). ``stdin``
        answers its ``input()``: a callable given each prompt (``stdin=input`` asks on
        your terminal; it runs in a worker thread) or an iterable of answers. Without
        it ``input()`` raises StdinNotAvailable in the cell."""
        return self._call(self._session.execute_cell, cell_id, timeout, _off_loop(stdin))

    def run(
        self, code: str, timeout: float | None = None, stdin: StdinSource | None = None
    ) -> ExecutionResult:
        """Append a code cell with ``code`` and execute it (``stdin``: see
        :meth:`execute_cell`)."""
        timeline.stamp("run.call")
        result = self._call(self._session.run, code, timeout, _off_loop(stdin))
        timeline.stamp("run.return")
        return result

    def run_all(
        self, timeout: float | None = None, stop_on_error: bool = True
    ) -> list[ExecutionResult]:
        """Run every code cell in order. An error cancels the cells after it, unless
        ``stop_on_error`` is False (then every cell runs)."""
        return self._call(self._session.run_all, timeout, stop_on_error)

    def wait_for_execution(
        self, execution_id: str, timeout: float | None = None
    ) -> ExecutionResult:
        return self._call(self._session.wait_for_execution, execution_id, timeout)

    def interrupt(self) -> int:
        """Interrupt the running cell and clear the queue."""
        return self._call(self._session.interrupt)

    def restart_kernel(self) -> dict[str, Any]:
        return self._call(self._session.restart_kernel)

    def shutdown_kernel(self) -> None:
        self._call(self._session.shutdown_kernel)

    def clear_outputs(self, cell_id: str) -> None:
        self._call(self._session.clear_outputs, cell_id)

    def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        return self._call(self._session.complete, code, cursor_pos)

    def trust(
        self, approve: bool = True, packages: list[str] | None = None, env_source: str = "auto"
    ) -> dict[str, Any]:
        """Approve this notebook's dependencies (see :meth:`AsyncSession.trust`)."""
        return self._call(self._session.trust, approve, packages, env_source)

    def inspect(
        self, code: str, cursor_pos: int | None = None, detail_level: int = 0
    ) -> dict[str, Any]:
        """The kernel's help on the name at ``cursor_pos`` (``obj?`` / ``obj??``)."""
        return self._call(self._session.inspect, code, cursor_pos, detail_level)


def _off_loop(stdin: StdinSource | None) -> StdinSource | None:
    """A blocking callable runs in a worker thread: the session's loop keeps serving
    (its outputs, an interrupt) while it waits for someone to type."""
    if stdin is None or not callable(stdin):
        return stdin
    ask = stdin

    async def asked(prompt: str) -> str:
        return str(await asyncio.get_running_loop().run_in_executor(None, ask, prompt))

    return asked
