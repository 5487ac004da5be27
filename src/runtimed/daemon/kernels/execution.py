"""One execute_request in flight: its IOPub messages in order, then its reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Message = dict[str, Any]
"""A jupyter_client message dict (``header``, ``parent_header``, ``msg_type``, ``content``)."""

MessageCallback = Callable[[Message], object]


@dataclass(frozen=True)
class ExecuteReply:
    """The kernel's ``execute_reply``. ``status`` is ``ok``, ``error`` or ``aborted``."""

    msg_id: str
    status: Literal["ok", "error", "aborted"]
    execution_count: int | None = None
    ename: str | None = None
    evalue: str | None = None
    traceback: tuple[str, ...] = field(default_factory=tuple)
    #: The kernel sent no reply (see :meth:`Execution.reply`): nor any error output.
    synthesized: bool = False

    @property
    def success(self) -> bool:
        """True when the cell ran without raising."""
        return self.status == "ok"

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> ExecuteReply:
        """Build from an ``execute_reply`` message dict."""
        content = msg.get("content") or {}
        status = content.get("status", "error")
        count = content.get("execution_count")
        return cls(
            msg_id=str(msg.get("parent_header", {}).get("msg_id", "")),
            status=status if status in ("ok", "error", "aborted") else "error",
            execution_count=int(count) if count is not None else None,
            ename=content.get("ename"),
            evalue=content.get("evalue"),
            traceback=tuple(content.get("traceback") or ()),
        )


@dataclass(frozen=True)
class CompleteResult:
    """A ``complete_reply``: replace ``code[cursor_start:cursor_end]`` with one of ``matches``."""

    matches: tuple[str, ...]
    cursor_start: int
    cursor_end: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_content(cls, content: Mapping[str, Any], cursor_pos: int) -> CompleteResult:
        """From a ``complete_reply``'s content (missing cursors: ``cursor_pos``)."""
        return cls(
            matches=tuple(content.get("matches") or ()),
            cursor_start=int(content.get("cursor_start", cursor_pos)),
            cursor_end=int(content.get("cursor_end", cursor_pos)),
            metadata=dict(content.get("metadata") or {}),
        )


#: How long a reply may trail the kernel's ``idle`` for its request, by default. The kernel
#: sends the reply before it publishes idle, so a reply still missing after this never comes.
REPLY_GRACE = 1.0


class _End:
    pass


_END = _End()


class Execution:
    """Handle on one execution. Iterate it for IOPub messages, or ``await wait(callback)``.

    Iteration ends after the kernel reports ``idle`` for this request. If the kernel dies,
    is restarted or shut down first, iteration raises KernelDiedError /
    ExecutionAbortedError after yielding every message that did arrive.
    Consume it once, one way: messages are not kept.
    """

    def __init__(
        self, msg_id: str, reply: asyncio.Future[Message], reply_grace: float = REPLY_GRACE
    ) -> None:
        self.msg_id = msg_id
        self._reply = reply
        self._reply_grace = reply_grace
        self._queue: asyncio.Queue[Message | _End | BaseException] = asyncio.Queue()
        self._ended: asyncio.Future[None] = reply.get_loop().create_future()
        self._listener: MessageCallback | None = None
        #: Gets the kernel's ``input_request`` messages (only an execution sent with
        #: ``allow_stdin`` gets any; see ``KernelSession.submit``).
        self.on_input: MessageCallback | None = None
        self.done = False
        self.interrupted = False

    def push(self, msg: Message) -> None:
        """Router side: one IOPub message for this execution."""
        listener = self._listener
        if listener is None:
            self._queue.put_nowait(msg)
            return
        try:
            listener(msg)
        except Exception as exc:  # surfaces from wait(); later messages are dropped
            self._listener = None
            self.fail(exc)

    def ask_input(self, msg: Message) -> None:
        """Router side: the kernel waits in ``input()`` for this execution."""
        if self.on_input is not None:
            self.on_input(msg)

    def finish(self) -> None:
        """Router side: the kernel went idle for this execution."""
        if not self.done:
            self.done = True
            self._queue.put_nowait(_END)
            if not self._ended.done():
                self._ended.set_result(None)

    def fail(self, error: BaseException) -> None:
        """Router side: the execution cannot complete."""
        if not self.done:
            self.done = True
            self._queue.put_nowait(error)
            if not self._ended.done():
                self._ended.set_exception(error)
                self._ended.exception()  # mark retrieved: callers may only iterate
        if not self._reply.done():
            self._reply.set_exception(error)
            self._reply.exception()

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def mark_interrupted(self) -> None:
        """Router side: an interrupt was sent while this execution was in flight."""
        self.interrupted = True

    async def reply(self) -> ExecuteReply:
        """The ``execute_reply`` (raises the same errors as iteration).

        ipykernel sends no reply when an interrupt lands before the cell's code runs (while
        it publishes ``execute_input``): it goes idle all the same. Such an execution ends
        with a KeyboardInterrupt error; any other one without a reply with a KernelError.
        """
        if not self._reply.done() and not self._ended.done():
            # Awaited before idle: the reply, or idle without one, whichever comes first.
            await asyncio.wait((self._reply, self._ended), return_when=asyncio.FIRST_COMPLETED)
        if self._reply.done():
            return ExecuteReply.from_message(self._reply.result())
        try:
            return ExecuteReply.from_message(
                await asyncio.wait_for(asyncio.shield(self._reply), self._reply_grace)
            )
        except TimeoutError:
            return self._missing_reply()

    def _missing_reply(self) -> ExecuteReply:
        if self.interrupted:
            ename, evalue = "KeyboardInterrupt", "interrupted before it ran"
        else:
            ename, evalue = "KernelError", "the kernel went idle without replying"
        return ExecuteReply(self.msg_id, "error", None, ename, evalue, (), synthesized=True)

    async def wait(self, on_message: MessageCallback | None = None) -> ExecuteReply:
        """Feed every IOPub message to ``on_message`` until idle, then return the reply.

        Messages go to ``on_message`` as the router receives them, with no task switch per
        message: this task wakes once, when the execution ends.
        """
        callback: MessageCallback = on_message or (lambda msg: None)
        while not self._queue.empty():  # what arrived before the caller got here
            item = self._queue.get_nowait()
            if isinstance(item, _End):
                return await self.reply()
            if isinstance(item, BaseException):
                raise item
            callback(item)
        self._listener = callback
        await self._ended
        return await self.reply()
