"""KernelSession: one ipykernel in one environment, driven through jupyter_client.

Lifecycle (``session.state.lifecycle``): ``not_started`` -> ``launching`` -> ``running``;
``running`` -> ``restarting`` -> ``running``; death -> ``dead``; ``shutdown`` at the end.
Every change (and every busy/idle flip) goes to the listeners added with
:meth:`KernelSession.add_listener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager

from runtimed.daemon.kernels.channels import KernelChannels, PartsDecoder, decode_parts
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
from runtimed.daemon.kernels.kernelspec import (
    SingleKernelSpecManager,
    check_language,
    env_variables,
    installed_env_variables,
    installed_kernelspec,
    python_kernelspec,
)
from runtimed.daemon.kernels.lifecycle import Activity, KernelLifecycle, KernelState
from runtimed.daemon.kernels.readiness import wait_until_ready
from runtimed.daemon.kernels.router import MessageRouter
from runtimed.daemon.kernels.workspace import KernelWorkspace, create_workspace

log = logging.getLogger(__name__)

StateListener = Callable[[KernelState], object]
DEATH_DRAIN_SECONDS = 0.05


class KernelSession:
    """One kernel: launch, execute, interrupt, restart, shut down. asyncio only.

    Run one execution with ``await session.execute(code, on_message)`` (every IOPub
    message of that execution goes to ``on_message``, the ``execute_reply`` is returned),
    or ``execution = session.submit(code)``, ``async for msg in execution``, ``await
    execution.reply()``. Both end when the kernel goes idle for that request, or raise
    KernelDiedError when the kernel process dies first (ExecutionAbortedError on
    restart/shutdown). Never hangs on a dead kernel: a watcher polls the process.
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        on_unrouted: MessageCallback | None = None,
    ) -> None:
        """``on_unrouted`` receives IOPub messages of no pending execution (output from
        threads after their cell finished, comm traffic)."""
        self.config = config
        self._state = KernelState(KernelLifecycle.NOT_STARTED)
        self._listeners: list[StateListener] = []
        self._router = MessageRouter(on_unrouted)
        self._km: AsyncKernelManager | None = None
        self._channels: KernelChannels | None = None
        self._decode_large: PartsDecoder = decode_parts
        self._iopub_seen = asyncio.Event()
        self._workspace: KernelWorkspace | None = None
        self._log: IO[bytes] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.kernel_info: dict[str, Any] = {}

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> KernelState:
        """Lifecycle, activity, error and exit code right now."""
        return self._state

    @property
    def lifecycle(self) -> KernelLifecycle:
        """Shortcut for ``state.lifecycle``."""
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
        if self._channels is not None:
            self._channels.decode_large = decoder

    def relocate(self, cwd: Path) -> None:
        """From now on (restarts included) the kernel starts in ``cwd``; a pooled kernel
        handed to a notebook moves there (its running process is moved by its owner)."""
        self.config = dataclasses.replace(self.config, cwd=cwd)
        launch_args: Any = self._km._launch_args if self._km is not None else None
        if isinstance(launch_args, dict):
            # jupyter_client restarts with the arguments of the first start.
            launch_args["cwd"] = str(cwd)

    @property
    def is_alive(self) -> bool:
        """True while the kernel is running and its process has not exited."""
        if self.lifecycle is not KernelLifecycle.RUNNING:
            return False
        process = getattr(self._km.provisioner if self._km else None, "process", None)
        return process is None or process.poll() is None

    @property
    def pid(self) -> int | None:
        """The kernel's process id (local provisioner only)."""
        return getattr(self._km.provisioner if self._km else None, "pid", None)

    @property
    def transport(self) -> str | None:
        """``ipc`` or ``tcp`` (None before the first start)."""
        return str(self._km.transport) if self._km is not None else None

    @property
    def workspace(self) -> KernelWorkspace | None:
        """The kernel's private dir (connection file, IPC sockets, log)."""
        return self._workspace

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
        if self._km is not None:  # dead after running: restart() keeps its connection
            await self.restart()
            return
        if self.config.spec is None:
            check_language(self.config.language)
        self._set_state(lifecycle=KernelLifecycle.LAUNCHING, error=None, exit_code=None)
        try:
            await self._launch()
            await self._connect()
        except BaseException as exc:
            await self._abandon_start(exc)
            raise
        self._set_state(lifecycle=KernelLifecycle.RUNNING, activity="idle")

    async def _launch(self) -> None:
        config = self.config
        self._workspace = workspace = create_workspace(config.runtime_dir)
        config.ipython_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        guard_pid = os.getpid() if config.parent_death_guard else None
        if config.spec is not None:
            spec = installed_kernelspec(config.spec, guard_pid)
            env = {**installed_env_variables(config.ipython_dir), **config.extra_env}
        else:
            spec = python_kernelspec(
                config.python_path,
                display_name=config.display_name,
                guard_parent_pid=guard_pid,
                metadata=config.kernelspec_metadata,
            )
            env = {**env_variables(config.python_path, config.ipython_dir), **config.extra_env}
        self._km = AsyncKernelManager(
            kernel_name=config.kernel_name,
            kernel_spec_manager=SingleKernelSpecManager(config.kernel_name, spec),
            # ipykernel speaks IPC (socket files in the 0700 workspace); other kernels
            # (Deno, ...) may know only TCP: loopback, with the connection file's key.
            transport="ipc" if config.spec is None else "tcp",
            ip=workspace.ipc_base if config.spec is None else "127.0.0.1",
            connection_file=str(workspace.connection_file),
            shutdown_wait_time=config.shutdown_timeout,
        )
        self._log = workspace.log_file.open("ab")
        try:
            await self._km.start_kernel(
                cwd=str(config.cwd), env=env, stdout=self._log, stderr=self._log
            )
        except OSError as exc:
            raise KernelStartError(f"could not run {spec.argv[0]}: {exc}") from exc

    async def _connect(self) -> None:
        """New channels, wait for kernel_info, check the language, watch the process."""
        assert self._km is not None and self._workspace is not None
        km, workspace = self._km, self._workspace
        self._iopub_seen.clear()
        self._channels = KernelChannels(
            km.get_connection_info(), km.session, self._on_iopub, self._router.route_reply
        )
        self._channels.decode_large = self._decode_large
        reply = await wait_until_ready(
            self._request_kernel_info,
            self._iopub_seen,
            self._exit_code,
            self.config.startup_timeout,
            workspace.read_log_tail,
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
        """A kernel_info round trip on the shell channel: the kernel's main loop answers
        (raises KernelError otherwise)."""
        self._require_running()
        assert self._channels is not None
        msg_id = self._channels.send_shell("kernel_info_request", {})
        await self._await_reply(self._router.expect_reply(msg_id), msg_id, timeout)

    def _request_kernel_info(self) -> asyncio.Future[Message]:
        assert self._channels is not None
        return self._router.expect_reply(self._channels.send_shell("kernel_info_request", {}))

    async def _abandon_start(self, exc: BaseException) -> None:
        """Tear down whatever a failed start left behind; the session becomes dead."""
        error = exc.message if isinstance(exc, KernelError) else repr(exc)
        exit_code = await self._exit_code() if self._km is not None else None
        await self._teardown(now=True)
        self._km = None
        self._set_state(
            lifecycle=KernelLifecycle.DEAD, activity="unknown", error=error, exit_code=exit_code
        )

    async def _exit_code(self) -> int | None:
        """The kernel process's exit code, None while it lives (or has not launched)."""
        km = self._km
        if km is None or km.provisioner is None or not km.provisioner.has_process:
            return None
        code = await km.provisioner.poll()
        return int(code) if code is not None else None

    # -- readers and the death watcher ---------------------------------------------------

    async def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

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
        """Poll the process; on death fail everything pending and go ``dead``."""
        while await self._exit_code() is None:
            await asyncio.sleep(self.config.poll_interval)
        exit_code = await self._exit_code()
        await asyncio.sleep(DEATH_DRAIN_SECONDS)  # let readers take what was sent before
        self._watcher = None
        self._close_channels()
        self._router.fail_all(KernelDiedError(exit_code))
        message = KernelDiedError(exit_code).message
        log.warning("%s (kernel log: %s)", message, self._workspace and self._workspace.log_file)
        self._set_state(
            lifecycle=KernelLifecycle.DEAD, activity="unknown", error=message, exit_code=exit_code
        )

    # -- requests ------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self.lifecycle is not KernelLifecycle.RUNNING:
            raise KernelNotRunningError(self.lifecycle.value)

    def submit(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        stop_on_error: bool = True,
    ) -> Execution:
        """Send an execute_request now; iterate the returned Execution for its messages."""
        self._require_running()
        assert self._channels is not None
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": stop_on_error,
        }
        return self._router.track(self._channels.send_shell("execute_request", content))

    async def execute(
        self, code: str, on_message: MessageCallback | None = None, **options: Any
    ) -> ExecuteReply:
        """Run ``code``; every IOPub message of it goes to ``on_message`` in order.

        Returns the execute_reply once the kernel is idle for it. Raises KernelDiedError if
        the kernel dies first. ``options``: see :meth:`submit`.
        """
        return await self.submit(code, **options).wait(on_message)

    async def complete(self, code: str, cursor_pos: int, timeout: float = 10.0) -> CompleteResult:
        """Completions at ``cursor_pos`` (a character offset into ``code``)."""
        self._require_running()
        assert self._channels is not None
        msg_id = self._channels.send_shell(
            "complete_request", {"code": code, "cursor_pos": cursor_pos}
        )
        reply = await self._await_reply(self._router.expect_reply(msg_id), msg_id, timeout)
        content = reply.get("content") or {}
        return CompleteResult(
            matches=tuple(content.get("matches") or ()),
            cursor_start=int(content.get("cursor_start", cursor_pos)),
            cursor_end=int(content.get("cursor_end", cursor_pos)),
            metadata=dict(content.get("metadata") or {}),
        )

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
        """Interrupt the running cell: interrupt_request on the control channel when the
        kernelspec's interrupt_mode is ``message`` (SIGINT if no reply in time), else SIGINT.
        The execution then ends normally, with a KeyboardInterrupt error output."""
        self._require_running()
        assert self._km is not None
        spec = self._km.kernel_spec
        self._router.mark_interrupted()
        if spec is not None and spec.interrupt_mode == "message" and await self._interrupt_msg():
            return
        await self._km.signal_kernel(signal.SIGINT)

    async def _interrupt_msg(self) -> bool:
        assert self._channels is not None
        msg_id = self._channels.send_control("interrupt_request", {})
        future = self._router.expect_reply(msg_id)
        try:
            await self._await_reply(future, msg_id, self.config.interrupt_reply_timeout)
        except KernelError:
            log.info("no interrupt_reply; falling back to SIGINT")
            return False
        return True

    # -- restart and shutdown ------------------------------------------------------------

    async def restart(self) -> None:
        """Restart (a running or dead kernel): fresh process, fresh namespace, same
        connection. Pending executions end with ExecutionAbortedError."""
        if self._km is None or self.lifecycle not in (
            KernelLifecycle.RUNNING,
            KernelLifecycle.DEAD,
        ):
            raise KernelNotRunningError(self.lifecycle.value)
        self._set_state(
            lifecycle=KernelLifecycle.RESTARTING, activity="unknown", error=None, exit_code=None
        )
        await self._disconnect(ExecutionAbortedError("the kernel was restarted"))
        try:
            await self._km.restart_kernel(now=await self._exit_code() is not None)
            await self._connect()
        except BaseException as exc:
            await self._abandon_start(exc)
            raise
        self._set_state(lifecycle=KernelLifecycle.RUNNING, activity="idle")

    async def _disconnect(self, reason: BaseException) -> None:
        await self._stop_watcher()
        self._close_channels()
        self._router.fail_all(reason)

    def _close_channels(self) -> None:
        channels, self._channels = self._channels, None
        if channels is not None:
            channels.close()

    async def shutdown(self, now: bool = False) -> None:
        """Stop the kernel (politely unless ``now``), delete its private dir. Idempotent."""
        if self.lifecycle is KernelLifecycle.SHUTDOWN:
            return
        await self._teardown(now=now)
        self._km = None
        self._set_state(lifecycle=KernelLifecycle.SHUTDOWN, activity="unknown")

    async def _teardown(self, now: bool) -> None:
        await self._disconnect(ExecutionAbortedError("the kernel was shut down"))
        km = self._km
        if now:
            await self._stop_guard()
        if km is not None and km.has_kernel:
            try:
                await km.shutdown_kernel(now=now or await self._exit_code() is not None)
            except Exception:
                log.exception("kernel shutdown failed; killing it")
                with contextlib.suppress(Exception):
                    await km.shutdown_kernel(now=True)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workspace is not None:
            self._workspace.remove()

    async def _stop_guard(self, timeout: float = 2.0) -> None:
        """SIGTERM to the guard, which kills the kernel and everything it started, then
        exits. jupyter_client's kill is a SIGKILL, which would leave it no time."""
        pid = self.pid
        if pid is None or not self.config.parent_death_guard or await self._exit_code() is not None:
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while await self._exit_code() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> KernelSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()
