"""InputWaits: the ``input()`` prompts of the cells an agent ran, per open notebook.

The MCP server queues every cell with ``stdin``, so a cell that calls ``input()`` or
``getpass()`` asks the agent: the daemon's ``input_request`` event lands here, the tool
that waits for the execution returns ``waiting_for_input`` with the prompt, and the
``send_input`` tool answers. ``input_cancelled`` (an interrupt) and the execution's end
void a prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class InputWaits:
    """Prompts waiting for an answer, by execution id (a session's event listener)."""

    def __init__(self) -> None:
        self._prompts: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Event()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        execution_id = str(event.get("execution_id"))
        if kind == "input_request":
            self._prompts[execution_id] = event
        elif kind in ("input_cancelled", "execution_done"):
            self._prompts.pop(execution_id, None)
        else:
            return
        self._changed.set()

    def prompt(self, execution_id: str) -> dict[str, Any] | None:
        """The pending ``input_request`` event of ``execution_id``, if any."""
        return self._prompts.get(execution_id)

    def answered(self, execution_id: str, prompt: dict[str, Any] | None) -> None:
        """``prompt`` was answered. Only that one goes: the cell's next ``input()`` may
        have asked already (its event can arrive with the answer's reply)."""
        if prompt is not None and self._prompts.get(execution_id) is prompt:
            del self._prompts[execution_id]

    async def until_prompt(self, execution_id: str) -> dict[str, Any]:
        """Wait until ``execution_id`` asks for input (cancel to stop waiting)."""
        while (event := self._prompts.get(execution_id)) is None:
            self._changed.clear()
            await self._changed.wait()
        return event


async def first_of(done: asyncio.Future[Any], waits: InputWaits, execution_id: str) -> bool:
    """Wait for ``done`` or a prompt of ``execution_id``; True when the prompt came
    first (``done`` keeps going). ``done``'s exceptions are left to its owner."""
    prompt = asyncio.ensure_future(waits.until_prompt(execution_id))
    try:
        await asyncio.wait({done, prompt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        prompt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prompt
    return not done.done() and waits.prompt(execution_id) is not None
