"""KernelSession: one kernel, as the rest of the daemon sees it.

A session composes a *backend* (the kernel's lifecycle: launch, exit code, interrupt, restart,
shutdown; ``backend.py``, by default a local process, ``local_backend.py``) and a *wire factory*
(its messages; ``wire.py``, by default ZMQ sockets, ``channels.py``). What changes with neither
stays here: lifecycle state and listeners, readiness, routing of messages to executions and
replies (``router.py``), requests (execute, stdin, complete, interrupt, ping, comm messages)
and the death watcher, which polls the backend and fails everything pending on exit.

Lifecycle: ``not_started`` -> ``launching`` -> ``running`` -> ``restarting`` -> ``running``;
death -> ``dead``; ``shutdown`` at the end. Every change (and busy/idle flip) goes to the
listeners of :meth:`KernelSession.add_listener`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runtimed.daemon.kernels.backend import KernelBackend
from runtimed.daemon.kernels.channels import PartsDecoder, decode_parts
from runtimed.daemon.kernels.config import KernelConfig
from runtimed.daemon.kernels.errors import (
    ExecutionAbortedError,
    KernelDiedError,
    KernelError,
    KernelNotRunningError,
    KernelStartError,
    UnsupportedLanguageError,
)
from runtimed.daemon.kernels.execution import (
    CompleteResult,
    ExecuteReply,
    Execution,
    Message,
    MessageCallback,
)
from runtimed.daemon.kernels.kernelspec import check_language
from runtimed.daemon.kernels.lifecycle import Activity, KernelLifecycle, KernelState
from runtimed.daemon.kernels.local_backend import LocalKernelBackend
from runtimed.daemon.kernels.readiness import wait_until_ready
from runtimed.daemon.kernels.router import MessageRouter
from runtimed.daemon.kernels.wire import KernelConnection, KernelWire, WireFactory, zmq_wire
from runtimed.daemon.kernels.workspace import KernelWorkspace

log = logging.getLogger(__name__)

StateListener = Callable[[KernelState], object]
DEATH_DRAIN_SECONDS = 0.05


class KernelSession:
    """One kernel: launch, execute, interrupt, restart, shut down. asyncio only.

    ``await session.execute(code, on_message)`` (each IOPub message of it goes to ``on_message``;
    returns the ``execute_reply``), or ``execution = session.submit(code)``, ``async for msg in
    execution``, ``await execution.reply()``. Both end when the kernel goes idle for it, or
    raise KernelDiedError (ExecutionAbortedError on restart or shutdown). Never hangs on a dead
    kernel: a watcher polls the backend.
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        on_unrouted: MessageCallback | None = None,
        backend: KernelBackend | None = None,
        wire: WireFactory = zmq_wire,
    ) -> None:
        """``on_unrouted`` gets IOPub messages of no pending execution (late thread output,
        comms); ``backend`` runs the kernel (local by default), ``wire`` reaches it (ZMQ)."""
        self.config = config
        self._state = KernelState(KernelLifecycle.NOT_STARTED)
        self._listeners: list[StateListener] = []
        self._router = MessageRouter(on_unrouted, reply_grace=config.reply_grace)
        self._backend: KernelBackend = backend if backend is not None else LocalKernelBackend()
        self._make_wire = wire
        self._wire: KernelWire | None = None
        self._decode_large: PartsDecoder = decode_parts
        self._iopub_seen = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self.kernel_info: dict[str, Any] = {}

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> KernelState:
        """Lifecycle, activity, error and exit code right now."""
        return self._state

    @property
    def lifecycle(self) -> KernelLifecycle:
        return self._state.lifecycle

    def add_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener(state)`` on every state change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set_unrouted_handler(self, callback: MessageCallback | None) -> None:
        """Where IOPub messages of no pending execution go from now on (a kernel started
        before its owner was known gets its owner's handler here)."""
        self._router.set_unrouted_handler(callback)

    def set_large_message_decoder(self, decoder: PartsDecoder) -> None:
        """How messages over a megabyte are decoded (in a worker thread) from now on,
        restarts included: the daemon stores their big values as blobs as it decodes."""
        self._decode_large = decoder
        if self._wire is not None:
            self._wire.decode_large = decoder

    def relocate(self, cwd: Path) -> None:
        """From now on (restarts included) the kernel starts in ``cwd``; a pooled kernel
        handed to a notebook moves there (its running process is moved by its owner)."""
        self.config = dataclasses.replace(self.config, cwd=cwd)
        self._backend.relocate(cwd)

    @property
    def is_alive(self) -> bool:
        """True while the kernel is running and has not exited."""
        return self.lifecycle is KernelLifecycle.RUNNING and not self._backend.exited

    @property
    def pid(self) -> int | None:
        """The kernel's process id (a local process only)."""
        return self._backend.pid

    @property
    def transport(self) -> str | None:
        """``ipc`` or ``tcp`` (None before the first start)."""
        return self._backend.transport

    @property
    def workspace(self) -> KernelWorkspace | None:
        """The kernel's private dir (connection file, IPC sockets, log)."""
        return self._backend.workspace

    def _set_state(self, **changes: Any) -> None:
        fields = {**self._state.__dict__, **changes}
        new = KernelState(**fields)
        if new == self._state:
            return
        self._state = new
        for listener in list(self._listeners):
            try:
                listener(new)
            except Exception:
                log.exception("kernel state listener failed")

    # -- start ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch the kernel and wait until it answers. Raises KernelStartError (with the
        kernel's stderr) or UnsupportedLanguageError."""
        if self.lifecycle not in (KernelLifecycle.NOT_STARTED, KernelLifecycle.DEAD):
            raise KernelError(f"cannot start a kernel that is {self.lifecycle}")
        if self._backend.launched:  # dead after running: restart() keeps its connection
            await self.restart()
            return
        if self.config.spec is None:
            check_language(self.config.language)
        self._set_state(lifecycle=KernelLifecycle.LAUNCHING, error=None, exit_code=None)
        try:
            await self._connect(await self._backend.launch(self.config))
        except BaseException as exc:
            await self._abandon_start(exc)
            raise
        self._set_state(lifecycle=KernelLifecycle.RUNNING, activity="idle")

    async def _connect(self, connection: KernelConnection) -> None:
        """A new wire, wait for kernel_info, check the language, watch the process."""
        self._iopub_seen.clear()
        self._wire = self._make_wire(connection, self._on_iopub, self._router.route_reply)
        self._wire.decode_large = self._decode_large
        reply = await wait_until_ready(
            self._request_kernel_info,
            self._iopub_seen,
            self._backend.exit_code,
            self.config.startup_timeout,
            self._backend.log_tail,
        )
        self.kernel_info = dict(reply.get("content") or {})
        language = str(self.kernel_info.get("language_info", {}).get("name", ""))
        try:
            if self.config.spec is None:
                check_language(language)
        except UnsupportedLanguageError as exc:
            raise KernelStartError(f"the kernel speaks {language!r}, not python") from exc
        self._watcher = asyncio.create_task(self._watch(), name="kernel-watch")

    async def ping(self, timeout: float) -> None:
        """A kernel_info round trip on shell: the kernel's main loop answers (else KernelError)."""
        await self.shell_request("kernel_info_request", {}, timeout)

    def _request_kernel_info(self) -> asyncio.Future[Message]:
        assert self._wire is not None
        return self._router.expect_reply(self._wire.send_shell("kernel_info_request", {}))

    async def _abandon_start(self, exc: BaseException) -> None:
        """Tear down whatever a failed start left behind; the session becomes dead."""
        error = exc.message if isinstance(exc, KernelError) else repr(exc)
        exit_code = await self._backend.exit_code()
        await self._teardown(now=True)
        self._set_state(
            lifecycle=KernelLifecycle.DEAD, activity="unknown", error=error, exit_code=exit_code
        )

    # -- readers and the death watcher ---------------------------------------------------

    async def _stop_watcher(self) -> None:
        """Cancel the death watcher, wait for its end (a caller cancelled meanwhile stays so)."""
        watcher, self._watcher = self._watcher, None
        if watcher is None or watcher is asyncio.current_task():
            return
        watcher.cancel()
        try:
            await watcher
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:
            log.exception("the kernel's death watcher failed")

    def _on_iopub(self, msg: Message) -> None:
        self._iopub_seen.set()
        if msg.get("msg_type") == "status":
            activity: Activity = (
                "busy" if msg["content"].get("execution_state") == "busy" else "idle"
            )
            if self.lifecycle is KernelLifecycle.RUNNING:
                self._set_state(activity=activity)
        self._router.route_iopub(msg)

    async def _watch(self) -> None:
        """Poll the backend; on death fail everything pending and go ``dead``."""
        while await self._backend.exit_code() is None:
            await asyncio.sleep(self.config.poll_interval)
        exit_code = await self._backend.exit_code()
        await asyncio.sleep(DEATH_DRAIN_SECONDS)  # let readers take what was sent before
        self._watcher = None
        self._close_wire()
        self._router.fail_all(KernelDiedError(exit_code))
        message = KernelDiedError(exit_code).message
        workspace = self._backend.workspace
        log.warning("%s (kernel log: %s)", message, workspace and workspace.log_file)
        self._set_state(
            lifecycle=KernelLifecycle.DEAD, activity="unknown", error=message, exit_code=exit_code
        )

    # -- requests ------------------------------------------------------------------------

    def _require_running(self) -> KernelWire:
        if self.lifecycle is not KernelLifecycle.RUNNING:
            raise KernelNotRunningError(self.lifecycle.value)
        assert self._wire is not None
        return self._wire

    def submit(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        stop_on_error: bool = True,
        on_input: MessageCallback | None = None,
    ) -> Execution:
        """Send an execute_request now; iterate the returned Execution for its messages.
        With ``on_input`` the kernel may ask for input (``allow_stdin``): its
        ``input_request`` messages go there; :meth:`reply_input` answers them."""
        wire = self._require_running()
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": on_input is not None,
            "stop_on_error": stop_on_error,
        }
        msg_id = wire.send_shell("execute_request", content)
        execution = self._router.track(msg_id)
        execution.on_input = on_input
        return execution

    def send_shell(self, msg_type: str, content: Message, buffers: Sequence[bytes] = ()) -> str:
        """Send a shell message no one awaits a reply to (``comm_msg`` + buffers); its id."""
        return self._require_running().send_shell(msg_type, content, buffers)

    def reply_input(self, request: Message, value: str) -> None:
        """Answer an ``input_request`` ("\\x04": EOF, ``input()`` raises EOFError)."""
        self._require_running().send_stdin("input_reply", {"value": value}, request)

    async def execute(
        self, code: str, on_message: MessageCallback | None = None, **options: Any
    ) -> ExecuteReply:
        """Run ``code``; every IOPub message of it goes to ``on_message`` in order.

        Returns the execute_reply once the kernel is idle for it. Raises KernelDiedError if
        the kernel dies first. ``options``: see :meth:`submit`.
        """
        return await self.submit(code, **options).wait(on_message)

    async def shell_request(
        self, msg_type: str, content: dict[str, Any], timeout: float = 10.0
    ) -> dict[str, Any]:
        """A shell round trip (``inspect_request``, ...); returns the reply's content."""
        wire = self._require_running()
        msg_id = wire.send_shell(msg_type, content)
        reply = await self._await_reply(self._router.expect_reply(msg_id), msg_id, timeout)
        return dict(reply.get("content") or {})

    async def complete(self, code: str, cursor_pos: int, timeout: float = 10.0) -> CompleteResult:
        """Completions at ``cursor_pos`` (a character offset into ``code``)."""
        request = {"code": code, "cursor_pos": cursor_pos}
        content = await self.shell_request("complete_request", request, timeout)
        return CompleteResult.from_content(content, cursor_pos)

    async def _await_reply(
        self, future: asyncio.Future[Message], msg_id: str, timeout: float
    ) -> Message:
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._router.forget_reply(msg_id)
            raise KernelError(
                f"the kernel did not answer within {timeout:g} s", code="kernel_timeout"
            ) from None

    async def interrupt(self) -> None:
        """Interrupt the running cell: interrupt_request on the control channel in the
        ``message`` interrupt mode (the backend's interrupt if no reply in time), else the
        backend's (SIGINT). The execution ends with a KeyboardInterrupt error output."""
        self._require_running()
        self._router.mark_interrupted()
        if self._backend.interrupt_mode == "message" and await self._interrupt_msg():
            return
        await self._backend.interrupt()

    async def _interrupt_msg(self) -> bool:
        msg_id = self._require_running().send_control("interrupt_request", {})
        future = self._router.expect_reply(msg_id)
        try:
            await self._await_reply(future, msg_id, self.config.interrupt_reply_timeout)
        except KernelError:
            log.info("no interrupt_reply; falling back to the backend's interrupt")
            return False
        return True

    # -- restart and shutdown ------------------------------------------------------------

    async def restart(self) -> None:
        """Restart (a running or dead kernel): fresh process, fresh namespace, same
        connection. Pending executions end with ExecutionAbortedError."""
        if not self._backend.launched or self.lifecycle not in (
            KernelLifecycle.RUNNING,
            KernelLifecycle.DEAD,
        ):
            raise KernelNotRunningError(self.lifecycle.value)
        self._set_state(
            lifecycle=KernelLifecycle.RESTARTING, activity="unknown", error=None, exit_code=None
        )
        await self._disconnect(ExecutionAbortedError("the kernel was restarted"))
        try:
            await self._connect(await self._backend.restart())
        except BaseException as exc:
            await self._abandon_start(exc)
            raise
        self._set_state(lifecycle=KernelLifecycle.RUNNING, activity="idle")

    async def _disconnect(self, reason: BaseException) -> None:
        await self._stop_watcher()
        self._close_wire()
        self._router.fail_all(reason)

    def _close_wire(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close()

    async def shutdown(self, now: bool = False) -> None:
        """Stop the kernel (politely unless ``now``), free its files. Idempotent."""
        if self.lifecycle is KernelLifecycle.SHUTDOWN:
            return
        await self._teardown(now=now)
        self._set_state(lifecycle=KernelLifecycle.SHUTDOWN, activity="unknown")

    async def _teardown(self, now: bool) -> None:
        await self._disconnect(ExecutionAbortedError("the kernel was shut down"))
        await self._backend.shutdown(now=now)

    async def __aenter__(self) -> KernelSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()
