"""What the execution queue needs of a kernel: the seam between ``ExecutionQueue`` and
``KernelSession`` (in-process tests drive the queue with doubles of these), and how the
queue insists on an interrupt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from runtimed.daemon.execution.records import ExecutionRecord
from runtimed.daemon.kernels import ExecuteReply, KernelError, KernelLifecycle, Message
from runtimed.daemon.kernels.execution import MessageCallback

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class StartedExecution:
    """An execution the kernel has: its running record, and whether it may ask input."""

    record: ExecutionRecord
    execution: RunningExecution
    asks_input: bool


class KernelGate(Protocol):
    """What the queue awaits before each cell: a running kernel (``RoomKernel`` starts
    one if none runs), or RuntimedError with the reason the cell cannot run."""

    def __call__(self) -> Awaitable[ExecutingKernel]: ...


async def interrupt_until_done(
    kernel: ExecutingKernel, execution_id: str, running: Callable[[], bool]
) -> None:
    """A kernel can miss an interrupt that lands at an awkward moment: ask again, as a
    person would, while ``running()`` says the cell goes on (at most three more times)."""
    for _ in range(3):
        for _ in range(15):  # up to 0.75 s for the cell to end
            if not running():
                return
            await asyncio.sleep(0.05)
        if kernel.lifecycle is not KernelLifecycle.RUNNING:
            return
        log.info("interrupting %s again: the cell is still running", execution_id)
        with contextlib.suppress(KernelError):
            await kernel.interrupt()
