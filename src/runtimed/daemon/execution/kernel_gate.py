"""What the execution queue needs of a kernel: the seam between ``ExecutionQueue`` and
``KernelSession`` (in-process tests drive the queue with doubles of these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from runtimed.daemon.kernels import ExecuteReply, KernelLifecycle, Message
from runtimed.daemon.kernels.execution import MessageCallback


class RunningExecution(Protocol):
    """An execute_request in flight (``runtimed.daemon.kernels.Execution``)."""

    msg_id: str

    async def wait(self, callback: Callable[[Message], object]) -> ExecuteReply: ...


class ExecutingKernel(Protocol):
    """What the queue needs of a kernel (``KernelSession`` is one)."""

    @property
    def lifecycle(self) -> KernelLifecycle: ...

    def submit(self, code: str, *, on_input: MessageCallback | None = None) -> RunningExecution:
        """``on_input``: the kernel may ask for input (see ``InputPrompts``)."""
        ...

    def reply_input(self, request: Message, value: str) -> None: ...

    async def interrupt(self) -> None: ...


class KernelGate(Protocol):
    """What the queue awaits before each cell: a running kernel (``RoomKernel`` starts
    one if none runs), or RuntimedError with the reason the cell cannot run."""

    def __call__(self) -> Awaitable[ExecutingKernel]: ...
