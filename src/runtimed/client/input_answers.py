"""InputAnswers: a session answers the ``input()`` / ``getpass()`` prompts of the cells
it runs with ``stdin=``, from a callable or an iterable of answers.

The daemon sends the event ``input_request {execution_id, prompt, password}`` to the
client that queued the cell with ``stdin: true``, and to it alone; ``input_reply``
answers. ``input_cancelled`` (an interrupt) voids a prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from runtimed.errors import RuntimedError

log = logging.getLogger(__name__)

#: ``stdin=``: called with each prompt (may be async), or the answers in order.
StdinSource = Callable[[str], "str | Awaitable[str]"] | Iterable[str]
#: What the kernel reads as end of input: the cell's ``input()`` raises EOFError.
EOF = "\x04"

Send = Callable[[str, str], Awaitable[None]]


class InputAnswers:
    """Answers the prompts of the executions it follows (a session's event listener)."""

    def __init__(self, source: StdinSource, send: Send) -> None:
        self._ask: Callable[[str], Any] | None = source if callable(source) else None
        self._answers: Iterator[str] | None = None if callable(source) else iter(source)
        self._send = send
        self._following: set[str] = set()
        self._early: list[dict[str, Any]] = []  # prompts of an id not yet followed
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def follow(self, execution_id: str) -> None:
        """Answer this execution's prompts (also those that came before this call)."""
        self._following.add(execution_id)
        early, self._early = self._early, []
        for event in early:
            self.on_event(event)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        execution_id = str(event.get("execution_id"))
        if kind == "input_cancelled":
            task = self._tasks.pop(execution_id, None)
            if task is not None:
                task.cancel()
        elif kind == "input_request":
            if execution_id not in self._following:
                self._early.append(event)
                return
            prompt = str(event.get("prompt") or "")
            task = asyncio.ensure_future(self._answer(execution_id, prompt))
            self._tasks[execution_id] = task

    async def _answer(self, execution_id: str, prompt: str) -> None:
        try:
            value = await self._value(prompt)
        except (StopIteration, EOFError):
            value = EOF
        except Exception:  # the cell sees end of input; the caller's bug is logged
            log.exception("the stdin callable failed; the cell reads end of input")
            value = EOF
        try:
            await self._send(execution_id, value)
        except RuntimedError as exc:  # interrupted meanwhile, or the cell ended
            log.debug("input for %s not delivered: %s", execution_id, exc)
        finally:  # the next prompt's task may be there already: only this one goes
            if self._tasks.get(execution_id) is asyncio.current_task():
                del self._tasks[execution_id]

    async def _value(self, prompt: str) -> str:
        if self._ask is None:
            assert self._answers is not None
            return str(next(self._answers))
        value = self._ask(prompt)
        if inspect.isawaitable(value):
            value = await value
        return str(value)

    async def close(self) -> None:
        """Stop answering (the execution ended)."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
