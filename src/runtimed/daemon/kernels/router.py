"""Routes kernel messages to the request that caused them, by parent msg_id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from runtimed.daemon.kernels.execution import REPLY_GRACE, Execution, Message

#: Comm messages go to the unrouted handler even during an execution (widgets are the
#: room's, not a cell's output).
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})


def parent_id(msg: Message) -> str | None:
    """The msg_id of the request this message answers."""
    parent = msg.get("parent_header") or {}
    value = parent.get("msg_id")
    return str(value) if value else None


class MessageRouter:
    """IOPub messages to their Execution, shell/control replies to their future."""

    def __init__(
        self,
        on_unrouted: Callable[[Message], object] | None = None,
        reply_grace: float = REPLY_GRACE,
    ) -> None:
        """``reply_grace``: how long an execution's reply may trail its ``idle``."""
        self._executions: dict[str, Execution] = {}
        self._replies: dict[str, asyncio.Future[Message]] = {}
        self._on_unrouted = on_unrouted
        self._reply_grace = reply_grace

    def set_unrouted_handler(self, callback: Callable[[Message], object] | None) -> None:
        self._on_unrouted = callback

    def expect_reply(self, msg_id: str) -> asyncio.Future[Message]:
        """A future resolved with the reply to ``msg_id``."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._replies[msg_id] = future
        return future

    def forget_reply(self, msg_id: str) -> None:
        """Stop waiting for a reply (the caller timed out)."""
        self._replies.pop(msg_id, None)

    def track(self, msg_id: str) -> Execution:
        """Register an execution before its request is sent."""
        execution = Execution(msg_id, self.expect_reply(msg_id), self._reply_grace)
        self._executions[msg_id] = execution
        return execution

    @property
    def pending(self) -> int:
        """Executions still waiting for idle."""
        return len(self._executions)

    def mark_interrupted(self) -> None:
        """An interrupt is being sent: every execution in flight may end without a reply."""
        for execution in self._executions.values():
            execution.mark_interrupted()

    def route_iopub(self, msg: Message) -> None:
        """Deliver one IOPub message; ``idle`` for an execution finishes it."""
        key = parent_id(msg)
        execution = self._executions.get(key) if key else None
        if execution is None or msg.get("msg_type") in COMM_TYPES:  # comms: the room's relay
            if self._on_unrouted is not None and msg.get("msg_type") != "status":
                self._on_unrouted(msg)
            return
        execution.push(msg)
        if msg.get("msg_type") == "status" and msg["content"].get("execution_state") == "idle":
            del self._executions[execution.msg_id]
            execution.finish()

    def route_reply(self, msg: Message) -> None:
        """Resolve the future waiting for this shell/control reply; a stdin request
        (``input_request``) goes to the execution that asked for it."""
        key = parent_id(msg)
        if msg.get("msg_type") == "input_request":
            execution = self._executions.get(key) if key else None
            if execution is not None:
                execution.ask_input(msg)
            return
        future = self._replies.pop(key, None) if key else None
        if future is not None and not future.done():
            future.set_result(msg)

    def fail_all(self, error: BaseException) -> None:
        """End every pending execution and reply with ``error``."""
        executions, self._executions = self._executions, {}
        for execution in executions.values():
            execution.fail(error)
        replies, self._replies = self._replies, {}
        for future in replies.values():
            if not future.done():
                future.set_exception(error)
                future.exception()
