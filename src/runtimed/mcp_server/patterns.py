"""Agents' regular expressions, run with a time bound in worker processes.

``PatternRunner.find(pattern, source)`` runs ``re.finditer`` in a child process
(``pattern_worker``) and waits at most ``timeout`` seconds for it: a pattern that
backtracks for ever fails with a ``regex_timeout`` tool error naming the bound, its
worker is killed (a new one starts on the next call), and the server's event loop never
runs the pattern, so it keeps answering other calls meanwhile. A few workers serve the
server's calls; a call waits for a free one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from runtimed.mcp_server import pattern_worker

#: Seconds one pattern may run (compiling it and sending the source included).
PATTERN_TIMEOUT = 1.0
#: Worker processes, so one slow pattern does not hold up another agent's.
WORKERS = 2
#: Spans kept for the answer (where an ambiguous pattern matches), and matches counted.
KEEP_SPANS = 6
COUNT_LIMIT = 1000
#: Seconds a new worker may take to start (Python's start-up, on a loaded machine).
START_TIMEOUT = 30.0

_SCRIPT = Path(pattern_worker.__file__)


@dataclass(frozen=True)
class Matches:
    """Where a pattern matched: the first spans, and how many (at most ``COUNT_LIMIT``)."""

    spans: tuple[tuple[int, int], ...]
    count: int
    #: There may be more than ``count``: counting stopped there.
    capped: bool = False


class _Worker:
    """One child process; started on first use, killed when a request does not finish."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None

    async def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        proc = await self._started()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                proc.stdin.write(pattern_worker.encode(request))
                await proc.stdin.drain()
                header = await proc.stdout.readexactly(pattern_worker.HEADER.size)
                (size,) = pattern_worker.HEADER.unpack(header)
                reply = pattern_worker.decode(await proc.stdout.readexactly(size))
        except BaseException:  # timed out, cancelled or died: its state is unknown
            await self.stop()
            raise
        if not isinstance(reply, dict):
            await self.stop()
            raise ConnectionError("the pattern worker answered nonsense")
        return reply

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        try:
            self._proc = await asyncio.wait_for(
                asyncio.create_subprocess_exec(
                    sys.executable,
                    "-I",
                    "-S",
                    str(_SCRIPT),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                ),
                START_TIMEOUT,
            )
        except TimeoutError:
            raise ConnectionError(f"no pattern worker started within {START_TIMEOUT:g} s") from None
        return self._proc

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())


class PatternRunner:
    """Runs agents' patterns in ``workers`` child processes, each call within ``timeout``."""

    def __init__(self, timeout: float = PATTERN_TIMEOUT, workers: int = WORKERS) -> None:
        self.timeout = timeout
        self._workers = [_Worker() for _ in range(workers)]
        self._idle: asyncio.Queue[_Worker] | None = None

    async def find(self, pattern: str, source: str, flags: int = re.MULTILINE) -> Matches:
        """Where ``pattern`` matches ``source``; a ToolError when it is invalid, times out
        (``regex_timeout``) or needs too much memory (``regex_memory``)."""
        request = {
            "pattern": pattern,
            "flags": int(flags),
            "source": source,
            "keep": KEEP_SPANS,
            "limit": COUNT_LIMIT,
        }
        idle = self._queue()
        worker = await idle.get()
        try:
            reply = await worker.ask(request, self.timeout)
        except TimeoutError:
            raise ToolError(
                f"regex_timeout: the pattern did not finish within {self.timeout:g} s on "
                f"the cell's {len(source)} characters, so it was stopped and nothing "
                "changed. Nested repeats such as (a+)+ or (a|a)* can backtrack for ever: "
                "make the pattern more specific (anchors, fewer nested repeats), or use "
                "replace_match for literal text"
            ) from None
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise ToolError(
                f"regex_failed: the process running the pattern ended ({exc or 'no answer'}); "
                "nothing changed"
            ) from None
        finally:
            idle.put_nowait(worker)
        return _matches(reply)

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:  # made in the running loop, on first use
            self._idle = asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        return self._idle

    async def aclose(self) -> None:
        for worker in self._workers:
            await worker.stop()

    async def __aenter__(self) -> PatternRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _matches(reply: dict[str, Any]) -> Matches:
    error = reply.get("error")
    if error == "memory":
        raise ToolError(
            f"regex_memory: the pattern needed more than {pattern_worker.MEMORY_LIMIT >> 20} "
            "MB, so it was stopped and nothing changed; make it simpler"
        )
    if error is not None:
        raise ToolError(f"pattern is not a valid Python regular expression: {reply.get('message')}")
    spans = tuple((int(start), int(end)) for start, end in reply["spans"])
    count = int(reply["count"])
    return Matches(spans, count, capped=count >= COUNT_LIMIT)
