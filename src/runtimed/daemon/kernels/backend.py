"""The backend: a kernel's lifecycle, whatever runs it.

A backend launches a kernel and returns how to reach it (a
:class:`~runtimed.daemon.kernels.wire.KernelConnection`), reports its exit code,
interrupts it by its own means, restarts and shuts it down. It sends no messages (the
wire does, see ``wire.py``). A :class:`~runtimed.daemon.kernels.kernel_session.KernelSession`
composes one backend and one wire factory; routing, readiness, outputs and the
execution queue are the same whatever the backend.

Today's backend is :class:`~runtimed.daemon.kernels.local_backend.LocalKernelBackend`
(a process on this machine through jupyter_client's provisioner, tied to the daemon's
life by the parent-death guard); a REST one (a Jupyter Kernel Gateway) is the next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from runtimed.daemon.kernels.config import KernelConfig
from runtimed.daemon.kernels.wire import KernelConnection
from runtimed.daemon.kernels.workspace import KernelWorkspace

InterruptMode = Literal["signal", "message"]


class KernelBackend(Protocol):
    """Launches, watches, interrupts, restarts and stops one kernel. asyncio only.

    ``launch`` may be called again after ``shutdown`` (a fresh kernel); ``restart`` keeps
    the connection of the launch (a live or exited kernel, a fresh process).
    """

    async def launch(self, config: KernelConfig) -> KernelConnection:
        """Start the kernel (it may not answer yet). Raises KernelStartError when it
        cannot be started; ``shutdown(now=True)`` then frees what was made."""
        ...

    async def restart(self) -> KernelConnection:
        """A fresh kernel process in place of the launched one (running or exited)."""
        ...

    async def exit_code(self) -> int | None:
        """The exit code once the kernel has exited (negative: killed by that signal);
        None while it lives or before a launch. Polled by the session's death watcher."""
        ...

    async def interrupt(self) -> None:
        """Interrupt by the backend's own means: SIGINT to a local process."""
        ...

    async def shutdown(self, now: bool) -> None:
        """Stop the kernel (politely unless ``now``; at once if it has exited) and free
        everything the launch made. Idempotent; afterwards ``launched`` is False."""
        ...

    def relocate(self, cwd: Path) -> None:
        """Restarts start the kernel in ``cwd`` from now on."""
        ...

    def log_tail(self) -> str:
        """The last output the kernel wrote (for error messages); empty if unknown."""
        ...

    @property
    def launched(self) -> bool:
        """True from ``launch`` until ``shutdown``."""
        ...

    @property
    def exited(self) -> bool:
        """True once the kernel is known to have exited, without waiting."""
        ...

    @property
    def interrupt_mode(self) -> InterruptMode:
        """``message``: the kernel wants an interrupt_request on control; ``signal``:
        :meth:`interrupt`."""
        ...

    @property
    def pid(self) -> int | None:
        """The kernel's process id, if it is a process here."""
        ...

    @property
    def transport(self) -> str | None:
        """``ipc``, ``tcp``, ... (None before the first launch)."""
        ...

    @property
    def workspace(self) -> KernelWorkspace | None:
        """The kernel's private dir on this machine (connection file, sockets, log)."""
        ...
