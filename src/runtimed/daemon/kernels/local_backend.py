"""LocalKernelBackend: a kernel process on this machine, through jupyter_client.

jupyter_client's ``AsyncKernelManager`` and its provisioner start, poll, signal, restart
and stop the process; its files live in a private 0700 workspace (connection file, IPC
sockets, kernel.log). ipykernel speaks IPC there; an installed kernelspec (Deno, ...)
may know only TCP, on loopback with the connection file's key. Unless configured
otherwise, the kernel runs under the parent-death guard (``runtimed.daemon.guard``):
it dies with the daemon, and ``shutdown(now=True)`` lets the guard take down
everything the kernel started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from pathlib import Path
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager

from runtimed.daemon.kernels.backend import InterruptMode
from runtimed.daemon.kernels.config import KernelConfig
from runtimed.daemon.kernels.errors import KernelError, KernelStartError
from runtimed.daemon.kernels.kernelspec import (
    SingleKernelSpecManager,
    env_variables,
    installed_env_variables,
    installed_kernelspec,
    python_kernelspec,
)
from runtimed.daemon.kernels.wire import KernelConnection
from runtimed.daemon.kernels.workspace import KernelWorkspace, create_workspace

log = logging.getLogger(__name__)


class LocalKernelBackend:
    """One kernel process here (a :class:`~runtimed.daemon.kernels.backend.KernelBackend`)."""

    def __init__(self) -> None:
        self._km: AsyncKernelManager | None = None
        self._config: KernelConfig | None = None
        self._workspace: KernelWorkspace | None = None
        self._log: IO[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def launch(self, config: KernelConfig) -> KernelConnection:
        """Start the process in a fresh workspace; it answers once ipykernel is up."""
        self._config = config
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
        self._km = km = AsyncKernelManager(
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
            await km.start_kernel(cwd=str(config.cwd), env=env, stdout=self._log, stderr=self._log)
        except OSError as exc:
            raise KernelStartError(f"could not run {spec.argv[0]}: {exc}") from exc
        return self._connection()

    async def restart(self) -> KernelConnection:
        """A fresh process on the same connection (jupyter_client keeps the ports)."""
        km = self._require_km()
        await km.restart_kernel(now=await self.exit_code() is not None)
        return self._connection()

    async def exit_code(self) -> int | None:
        km = self._km
        if km is None or km.provisioner is None or not km.provisioner.has_process:
            return None
        code = await km.provisioner.poll()
        return int(code) if code is not None else None

    async def interrupt(self) -> None:
        await self._require_km().signal_kernel(signal.SIGINT)

    async def shutdown(self, now: bool) -> None:
        km = self._km
        if now:
            await self._stop_guard()
        if km is not None and km.has_kernel:
            try:
                await km.shutdown_kernel(now=now or await self.exit_code() is not None)
            except Exception:
                log.exception("kernel shutdown failed; killing it")
                with contextlib.suppress(Exception):
                    await km.shutdown_kernel(now=True)
        self._km = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workspace is not None:
            self._workspace.remove()

    async def _stop_guard(self, timeout: float = 2.0) -> None:
        """SIGTERM to the guard, which kills the kernel and everything it started, then
        exits. jupyter_client's kill is a SIGKILL, which would leave it no time."""
        pid = self.pid
        guarded = self._config is not None and self._config.parent_death_guard
        if pid is None or not guarded or await self.exit_code() is not None:
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while await self.exit_code() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def relocate(self, cwd: Path) -> None:
        if self._config is not None:
            self._config = dataclasses.replace(self._config, cwd=cwd)
        launch_args: Any = self._km._launch_args if self._km is not None else None
        if isinstance(launch_args, dict):
            # jupyter_client restarts with the arguments of the first start.
            launch_args["cwd"] = str(cwd)

    # -- what it is ------------------------------------------------------------------------

    def log_tail(self) -> str:
        return self._workspace.read_log_tail() if self._workspace is not None else ""

    @property
    def launched(self) -> bool:
        return self._km is not None

    @property
    def exited(self) -> bool:
        process = getattr(self._km.provisioner if self._km else None, "process", None)
        return process is not None and process.poll() is not None

    @property
    def interrupt_mode(self) -> InterruptMode:
        spec = self._km.kernel_spec if self._km is not None else None
        return "message" if spec is not None and spec.interrupt_mode == "message" else "signal"

    @property
    def pid(self) -> int | None:
        """The process id (jupyter_client's local provisioner only)."""
        return getattr(self._km.provisioner if self._km else None, "pid", None)

    @property
    def transport(self) -> str | None:
        return str(self._km.transport) if self._km is not None else None

    @property
    def workspace(self) -> KernelWorkspace | None:
        """Kept after shutdown (its files are gone): it still names the kernel's files."""
        return self._workspace

    def _require_km(self) -> AsyncKernelManager:
        if self._km is None:
            raise KernelError("the kernel was not launched")
        return self._km

    def _connection(self) -> KernelConnection:
        km = self._require_km()
        return KernelConnection(km.get_connection_info(), km.session)
