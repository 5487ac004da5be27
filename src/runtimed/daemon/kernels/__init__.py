"""Kernels: ipykernel processes in pooled envs, driven through jupyter_client.

- :class:`KernelSession` launches, executes, interrupts, restarts and shuts down one kernel;
  it composes a :class:`KernelBackend` (lifecycle: a local process,
  :class:`LocalKernelBackend`, by default) and a :class:`KernelWire` (messages: ZMQ
  sockets by default).
- :class:`KernelConfig` says how (env python, cwd, private dirs, provisioner).
- :mod:`outputs` turns IOPub messages into nbformat outputs (pure).
- ``runtimed.daemon.guard`` ties every kernel's life to the daemon (no orphans, even on SIGKILL).
"""

from runtimed.daemon.kernels.backend import KernelBackend
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
from runtimed.daemon.kernels.local_backend import LocalKernelBackend
from runtimed.daemon.kernels.outputs import DisplayLocation, OutputChange, OutputStore
from runtimed.daemon.kernels.wire import KernelConnection, KernelWire, WireFactory

__all__ = [
    "CompleteResult",
    "DisplayLocation",
    "ExecuteReply",
    "Execution",
    "ExecutionAbortedError",
    "KernelBackend",
    "KernelConfig",
    "KernelConnection",
    "KernelDiedError",
    "KernelError",
    "KernelLifecycle",
    "KernelNotRunningError",
    "KernelSession",
    "KernelStartError",
    "KernelState",
    "KernelWire",
    "LocalKernelBackend",
    "Message",
    "OutputChange",
    "OutputStore",
    "UnsupportedLanguageError",
    "WireFactory",
]
