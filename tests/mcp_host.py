"""An MCP host for the tests: the SDK's own stdio client spawning `runt mcp` against a
test daemon, open for a whole module (tests/test_mcp*.py share it)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import psutil
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from helpers import DaemonProcess

RUNT = Path(sys.executable).with_name("runt")


class Agent:
    """An MCP host: the SDK's stdio client spawning `runt mcp`, open for the whole module.

    The client's anyio task group lives in one task (``_run``); tests call tools from
    their own tasks through it."""

    def __init__(self, params: StdioServerParameters, errlog: Path) -> None:
        self.params = params
        self.errlog = errlog
        self.session: ClientSession | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        with self.errlog.open("w") as log:
            async with stdio_client(self.params, errlog=log) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                self.session = s
                self._ready.set()
                await self._stop.wait()

    async def start(self) -> Agent:
        self._task = asyncio.create_task(self._run())
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, self._task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            ready.cancel()
            raise AssertionError(f"runt mcp did not start:\n{self.errlog.read_text()}")
        return self

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)

    async def call(self, tool: str, **args: Any) -> CallToolResult:
        assert self.session is not None
        return await self.session.call_tool(tool, args, read_timeout_seconds=120)

    async def ok(self, tool: str, **args: Any) -> tuple[str, Any, CallToolResult]:
        result = await self.call(tool, **args)
        text = all_text(result)
        assert not result.is_error, f"{tool} failed: {text}\n{self.errlog.read_text()[-2000:]}"
        return text, result.structured_content, result

    async def error(self, tool: str, **args: Any) -> str:
        result = await self.call(tool, **args)
        assert result.is_error, f"{tool}({args}) should fail, got: {all_text(result)}"
        return all_text(result)


def all_text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def mcp_env(tmp: Path, daemon: DaemonProcess) -> dict[str, str]:
    return {
        "RUNTIMED_SOCKET_PATH": str(daemon.socket_path),  # the server honours it
        "RUNTIMED_CACHE_DIR": str(tmp / "mcp-cache"),  # its recent-files list goes here
        "PYTHONDONTWRITEBYTECODE": "1",
    }


async def start_agent(daemon: DaemonProcess, tmp: Path) -> Agent:
    """`runt mcp` on ``daemon``, its working directory ``tmp``."""
    command = [str(RUNT)] if RUNT.exists() else [sys.executable, "-m", "runtimed.cli.runt_cli"]
    params = StdioServerParameters(
        command=command[0], args=[*command[1:], "mcp"], env=mcp_env(tmp, daemon), cwd=tmp
    )
    return await Agent(params, tmp / "mcp-stderr.log").start()


def pattern_workers() -> list[psutil.Process]:
    """This process's regex workers (an in-process MCP server's; other tests' daemons may
    be children too)."""
    found = []
    for child in psutil.Process().children():
        try:
            if any(part.endswith("pattern_worker.py") for part in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found
