"""RoomKernel: the controller of a room's one kernel, its state in the runtime document.

Names, here and wherever a room's kernel is handled: ``RoomKernel`` (this controller;
``room_kernel``), the ``AcquiredKernel`` a ``KernelProvider`` hands it (``acquired``: the
kernel and the env it runs in), that kernel's ``KernelSession`` (``session``) and the
queue's ``KernelGate`` (``_ready_session``). Cells run through the room's
``ExecutionQueue``, whose outputs the ``OutputWriter`` puts into the notebook document.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runtimed.daemon.envs.sources import first_code_cell
from runtimed.daemon.execution.input_prompts import InputClient
from runtimed.daemon.execution.large_outputs import BlobWriters, LargeMessageDecoder
from runtimed.daemon.execution.output_writer import BlobSink, OutputWriter
from runtimed.daemon.execution.queue import ExecutionQueue
from runtimed.daemon.execution.records import (
    ExecutionLogs,
    ExecutionRecord,
    MemoryExecutionLogs,
)
from runtimed.daemon.kernels import KernelError, KernelLifecycle, KernelSession, KernelState
from runtimed.daemon.kernels.installed import KernelChoice, choose_for_notebook
from runtimed.daemon.kernels.provider import AcquiredKernel, KernelProvider, KernelRequest
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_store import room_key
from runtimed.daemon.widgets.comm_relay import CommRelay, is_comm_message
from runtimed.daemon.widgets.output_capture import OutputCapture
from runtimed.errors import RuntimedError
from runtimed.protocol.room import Completions, Inspection, KernelDetails

log = logging.getLogger(__name__)

_LIVE = (KernelLifecycle.RUNNING, KernelLifecycle.LAUNCHING, KernelLifecycle.RESTARTING)
_COMMS_GONE = (KernelLifecycle.RESTARTING, KernelLifecycle.DEAD, KernelLifecycle.SHUTDOWN)

#: Rooms of runtimes started without a notebook (``runt start``) are ``runtime-<id>``.
RUNTIME_ROOM_PREFIX = "runtime-"


def runtime_id_of_room(notebook_id: str) -> str:
    """The runtime id of a room's kernel: a runtime room's own id, else a new short id."""
    if notebook_id.startswith(RUNTIME_ROOM_PREFIX):
        return notebook_id[len(RUNTIME_ROOM_PREFIX) :]
    return uuid.uuid4().hex[:8]


class RuntimeObserver(Protocol):
    """Told when a room's kernel starts, restarts, dies or stops (history of runtimes)."""

    def observe(self, room_kernel: RoomKernel, event: str) -> None: ...


class NoObserver:
    def observe(self, room_kernel: RoomKernel, event: str) -> None:
        return None


@dataclass(frozen=True)
class RoomKernelDeps:
    """What every room's kernel shares: where kernels come from, blobs, settings."""

    provider: KernelProvider
    #: Untitled notebooks' kernels work in ``<untitled_dir>/<room key>``.
    untitled_dir: Path
    blobs: BlobSink | None = None
    blob_threshold: Callable[[], int] = lambda: 1024
    execution_logs: ExecutionLogs = field(default_factory=MemoryExecutionLogs)
    runtime_observer: RuntimeObserver = field(default_factory=NoObserver)


class RoomKernel:
    """Launches, controls and describes the kernel of one room (``RoomKernels`` makes
    it on the room's first kernel request); the kernel itself is ``acquired``."""

    def __init__(self, room: NotebookRoom, deps: RoomKernelDeps) -> None:
        self.room = room
        self.deps = deps
        self.runtime_state = room.runtime_state
        #: This kernel's id in ``runt ps`` (kept across restarts).
        self.runtime_id = runtime_id_of_room(room.notebook_id)
        self.kernel_name: str | None = None
        self.started_at: float | None = None
        self.last_activity: float | None = None
        #: The running kernel and its env, from the provider; None when none runs.
        self.acquired: AcquiredKernel | None = None
        self.writer = OutputWriter(room.nb, deps.blobs, deps.blob_threshold)
        self.queue = ExecutionQueue(
            room.nb,
            room.runtime_state,
            self.writer,
            deps.execution_logs.for_room(room.notebook_id, room.nb, self._runtime_id),
            self._ready_session,
            room.broadcast_event_now,
            name=f"queue-{room.notebook_id}",
            kernel_now=lambda: self.session,
        )
        #: The kernel's widget models (in the runtime document).
        self.comms = CommRelay(
            room.runtime_state, lambda: self.session, deps.blobs, room.broadcast_event
        )
        self.writer.capture = OutputCapture(self.comms).capture
        self._launch_lock = asyncio.Lock()
        self.runtime_state.set_kernel(
            lifecycle="not_started",
            activity="idle",
            env_source=None,
            name=None,
            language=None,
            error=None,
        )

    # --- state -------------------------------------------------------------------------

    def _runtime_id(self) -> str | None:
        """For the room's execution log: the runtime its executions ran in."""
        return self.runtime_id

    @property
    def session(self) -> KernelSession | None:
        """The running kernel's session (None when none runs)."""
        return self.acquired.session if self.acquired is not None else None

    @property
    def env_path(self) -> str | None:
        """The env dir the kernel runs in (None for an installed kernelspec, or none)."""
        if self.acquired is None or self.acquired.env is None:
            return None
        return self.acquired.env.env.venv_path

    @property
    def lifecycle(self) -> str:
        return str(self.runtime_state.kernel_fields().get("lifecycle", "not_started"))

    @property
    def status(self) -> str:
        """For `list_rooms`: lifecycle, plus activity while running."""
        fields = self.runtime_state.kernel_fields()
        lifecycle = fields.get("lifecycle", "not_started")
        return f"{lifecycle}/{fields.get('activity')}" if lifecycle == "running" else lifecycle

    def info(self) -> KernelDetails:
        fields = self.runtime_state.kernel_fields()
        return KernelDetails(
            lifecycle=str(fields.get("lifecycle") or "not_started"),
            activity=fields.get("activity"),
            env_source=fields.get("env_source"),
            name=fields.get("name"),
            language=fields.get("language"),
            error=fields.get("error"),
            python_path=self.acquired.env.env.python_path
            if self.acquired and self.acquired.env
            else None,
            pid=self.session.pid if self.session else None,
        )

    def _on_state(self, state: KernelState) -> None:
        self.last_activity = time.time()
        dying = state.lifecycle is KernelLifecycle.DEAD and self.lifecycle != "dead"
        self.runtime_state.set_kernel(
            lifecycle=state.lifecycle.value, activity=state.activity, error=state.error
        )
        if state.lifecycle in _COMMS_GONE:
            self.comms.clear()
        if dying and self.started_at is not None:
            self.deps.runtime_observer.observe(self, "died")

    # --- launch ------------------------------------------------------------------------

    def _running(self) -> bool:
        return self.session is not None and self.session.lifecycle in _LIVE

    async def launch(
        self,
        kernel_type: str = "python",
        env_source: str = "auto",
        notebook_path: str | None = None,
        cwd: Path | None = None,
    ) -> KernelDetails:
        """Start the kernel (a no-op reporting the running one when it already runs);
        ``cwd`` overrides the working directory (the notebook's, or a private one)."""
        async with self._launch_lock:
            if self._running():
                return self.info()
            choice = choose_for_notebook(kernel_type, self.room.nb.metadata())
            self.runtime_state.set_kernel(
                lifecycle="preparing_env" if choice.is_env_python else "launching",
                activity="unknown",
                env_source=env_source if choice.is_env_python else f"kernelspec:{choice.name}",
                language=choice.language,
                name=None if choice.is_env_python else choice.display_name,
                error=None,
                error_code=None,
            )
            request = self._request(env_source, notebook_path, choice, cwd)
            try:
                acquired = await self.deps.provider.acquire(request)
            except RuntimedError as exc:  # error_code: what pages offer (the trust review)
                self.runtime_state.set_kernel(lifecycle="dead", error=exc.message,
                                              error_code=exc.code)  # fmt: skip
                raise
            self.acquired = acquired
            if acquired.source is not None:  # a remote kernel: no env was resolved here
                name = f"{choice.language} ({acquired.source})"
                self.runtime_state.set_kernel(env_source=acquired.source, name=name)
            session = acquired.session
            self._on_state(session.state)
            if isinstance(self.deps.blobs, BlobWriters):
                decoder = LargeMessageDecoder(self.deps.blobs)
                session.set_large_message_decoder(decoder.decode)
            self._describe_kernel(session, choice)
            self.queue.start()
            self.kernel_name = choice.name
            self.started_at = self.last_activity = time.time()
            self.deps.runtime_observer.observe(self, "started")
            log.info(
                "kernel for %s running (%s, pid %s)",
                self.room.notebook_id,
                acquired.env_source,
                session.pid,
            )
            return self.info()

    def _request(
        self, env_source: str, notebook_path: str | None, choice: KernelChoice, cwd: Path | None
    ) -> KernelRequest:
        language = choice.language

        def launching(env: Any) -> None:
            self.runtime_state.set_kernel(
                lifecycle="launching",
                env_source=env.env_source,
                name=f"{language} ({env.env_source})",
            )

        file_path = self.room.file.path
        return KernelRequest(
            env_source=env_source,
            metadata=self.room.nb.metadata(),
            notebook_path=notebook_path or file_path,
            cwd=cwd
            or (
                Path(file_path).parent
                if file_path
                else self.deps.untitled_dir / room_key(self.room.notebook_id)
            ),
            on_unrouted=self._on_unrouted,
            on_launching=launching,
            on_state=self._on_state,
            kernel=choice,
            first_code_cell=first_code_cell(self.room.nb),
        )

    def _describe_kernel(self, session: KernelSession, choice: KernelChoice) -> None:
        """The notebook's kernelspec and language_info, from the kernel that runs it (as
        Jupyter does): saved files then say what they need."""
        nb = self.room.nb
        language_info = dict(session.kernel_info.get("language_info") or {})
        spec = nb.get_metadata("kernelspec")
        with nb.doc.transaction():
            if choice.is_env_python:
                # Any Python kernelspec name the file had stays: pooled envs serve them all.
                if not isinstance(spec, dict) or spec.get("language") != choice.language:
                    nb.set_metadata("kernelspec", choice.notebook_kernelspec())
            elif not isinstance(spec, dict) or spec.get("name") != choice.name:
                nb.set_metadata("kernelspec", choice.notebook_kernelspec())
            if language_info and nb.get_metadata("language_info") != language_info:
                nb.set_metadata("language_info", language_info)

    async def _ready_session(self) -> KernelSession:
        """The queue's ``KernelGate``: the session of a running kernel, started on
        demand."""
        if self.session is None or self.session.lifecycle in (
            KernelLifecycle.NOT_STARTED,
            KernelLifecycle.SHUTDOWN,
        ):
            try:
                await self.launch()
            except RuntimedError as exc:
                raise RuntimedError(
                    f"the kernel could not start: {exc.message}", exc.code
                ) from None
        session = self.session
        assert session is not None
        if session.lifecycle is KernelLifecycle.DEAD and self.acquired and self.acquired.revive:
            await self._revive(session)
        if session.lifecycle is not KernelLifecycle.RUNNING:
            raise RuntimedError(
                f"the kernel is {session.lifecycle.value}; restart it with restart_kernel()",
                "kernel_not_running",
            )
        return session

    async def _revive(self, session: KernelSession) -> None:
        """A lost remote kernel: the next run starts a new one (same session)."""
        try:
            await session.start()
        except RuntimedError as exc:
            raise RuntimedError(f"the kernel could not start: {exc.message}", exc.code) from None
        self.deps.runtime_observer.observe(self, "restarted")

    def _on_unrouted(self, msg: dict[str, Any]) -> None:
        if is_comm_message(msg):
            return self.comms.on_kernel_message(msg)
        if self.writer.capture is not None and self.writer.capture(msg):
            return  # an Output widget's (e.g. printed by a button's on_click)
        parent = (msg.get("parent_header") or {}).get("msg_id")
        cell_id = self.queue.cell_of(str(parent))
        if cell_id is not None:
            self.writer.on_message(cell_id, msg)

    # --- execution ---------------------------------------------------------------------

    def enqueue(self, cell_id: str, input_client: InputClient | None = None) -> str:
        """Queue a cell; ``input_client`` answers its ``input()`` (see InputPrompts)."""
        return self.queue.enqueue(cell_id, input_client=input_client)

    def answer_input(self, execution_id: str, value: str, client: InputClient) -> None:
        self.queue.prompts.answer(execution_id, value, client)

    def input_client_left(self, client: InputClient) -> None:
        self.queue.prompts.client_left(client)

    def enqueue_all(self, stop_on_error: bool = True) -> list[str]:
        return self.queue.enqueue_all(stop_on_error)

    def record(self, execution_id: str) -> ExecutionRecord | None:
        return self.queue.record(execution_id)

    def clear_outputs(self, cell_id: str) -> None:
        self.writer.clear(cell_id)

    # --- control -----------------------------------------------------------------------

    def _require_session(self) -> KernelSession:
        if self.session is None or self.session.lifecycle is KernelLifecycle.SHUTDOWN:
            raise RuntimedError(
                "no kernel is running in this notebook; start one with start_kernel()", "no_kernel"
            )
        return self.session

    async def interrupt(self) -> int:
        """Interrupt the running cell and clear the queue; returns how many were cancelled."""
        return await self.queue.interrupt(self._require_session())

    async def restart(self) -> KernelDetails:
        session = self._require_session()
        self.queue.cancel_queued(reason="the kernel restarted")
        await session.restart()
        self.queue.start()
        self.deps.runtime_observer.observe(self, "restarted")
        return self.info()

    async def complete(self, code: str, cursor_pos: int) -> Completions:
        result = await self._require_session().complete(code, cursor_pos)
        return Completions(
            matches=list(result.matches),
            cursor_start=result.cursor_start,
            cursor_end=result.cursor_end,
            metadata=dict(result.metadata),
        )

    async def inspect(self, code: str, cursor_pos: int, detail_level: int) -> Inspection:
        request = {"code": code, "cursor_pos": cursor_pos, "detail_level": detail_level}
        content = await self._require_session().shell_request("inspect_request", request)
        return Inspection(
            found=bool(content.get("found")),
            data=dict(content.get("data") or {}),
            metadata=dict(content.get("metadata") or {}),
        )

    async def shutdown(self) -> None:
        """Stop the kernel and give its env back (pool envs are deleted)."""
        self.queue.cancel_queued(reason="the kernel was shut down")
        self.comms.clear()
        acquired, self.acquired = self.acquired, None
        if acquired is not None:
            try:
                await self.deps.provider.release(acquired)
            except KernelError:
                log.exception("shutting down the kernel of %s failed", self.room.notebook_id)
        self.runtime_state.set_kernel(lifecycle="shutdown", activity="idle")
        if acquired is not None:
            self.deps.runtime_observer.observe(self, "stopped")

    async def close(self) -> None:
        """The room is going away: stop the queue, the kernel, and release the env."""
        await self.queue.close()
        await self.shutdown()
        self.writer.close()
        self.queue.fail_waiters(RuntimedError("the notebook was closed", "closed"))
