"""ExecutionWaiters: the executions a session waits for, ended by the daemon's
``execution_done`` event, the one path by which an execution's result reaches a client."""

from __future__ import annotations

import asyncio
from typing import Any

from runtimed.errors import RuntimedError

Event = dict[str, Any]

#: Finished executions remembered for a late ``wait`` (bounded for long-lived sessions).
REMEMBERED = 10_000


class ExecutionWaiters:
    """Futures by execution id, resolved by ``execution_done`` events in arrival order."""

    def __init__(self) -> None:
        self._finished: dict[str, Event] = {}
        # A future per waiter: one that gives up (timeout, cancel) leaves the others', and
        # the event reaches each in one loop step (no shield or timeout task around it).
        self._waiting: dict[str, list[asyncio.Future[Event]]] = {}

    def on_event(self, event: Event) -> None:
        """A room event: an ``execution_done`` ends its execution's wait."""
        if event.get("event") != "execution_done":
            return
        execution_id = str(event.get("execution_id"))
        self._finished[execution_id] = event
        if len(self._finished) > REMEMBERED:
            self._finished.pop(next(iter(self._finished)))
        for future in self._waiting.pop(execution_id, []):
            if not future.done():
                future.set_result(event)

    async def wait(self, execution_id: str, timeout: float | None) -> Event:
        """The ``execution_done`` event of ``execution_id`` (at once if it came already)."""
        event = self._finished.get(execution_id)
        if event is not None:
            return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(execution_id, []).append(future)
        try:
            if timeout is None:
                return await future
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RuntimedError(
                f"execution {execution_id} did not finish within {timeout} s "
                "(it keeps running; interrupt() stops it)",
                "timeout",
            ) from None
        finally:
            waiters = self._waiting.get(execution_id)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiting[execution_id]

    def fail_all(self, error: RuntimedError) -> None:
        """The connection is gone: nobody waits for an event that may never come."""
        waiting, self._waiting = self._waiting, {}
        for future in (f for futures in waiting.values() for f in futures):
            if not future.done():
                future.set_exception(error)
                future.exception()  # a waiter may have given up: no "never retrieved" noise
