"""Kernels: ipykernel processes in pooled envs, driven through jupyter_client.

- :class:`KernelSession` launches, executes, interrupts, restarts and shuts down one kernel.
- :class:`KernelConfig` says how (env python, cwd, private dirs, provisioner).
- :mod:`outputs` turns IOPub messages into nbformat outputs (pure).
- ``runtimed.daemon.guard`` ties every kernel's life to the daemon (no orphans, even on SIGKILL).
"""

from runtimed.daemon.kernels.config import KernelConfig
from runtimed.daemon.kernels.errors import (
    ExecutionAbortedError,
    KernelDiedError,
    KernelError,
    KernelNotRunningError,
    KernelStartError,
    UnsupportedLanguageError,
)
from runtimed.daemon.kernels.execution import CompleteResult, ExecuteReply, Execution, Message
from runtimed.daemon.kernels.kernel_session import KernelSession
from runtimed.daemon.kernels.lifecycle import KernelLifecycle, KernelState
from runtimed.daemon.kernels.outputs import DisplayLocation, OutputChange, OutputStore

__all__ = [
    "CompleteResult",
    "DisplayLocation",
    "ExecuteReply",
    "Execution",
    "ExecutionAbortedError",
    "KernelConfig",
    "KernelDiedError",
    "KernelError",
    "KernelLifecycle",
    "KernelNotRunningError",
    "KernelSession",
    "KernelStartError",
    "KernelState",
    "Message",
    "OutputChange",
    "OutputStore",
    "UnsupportedLanguageError",
]
