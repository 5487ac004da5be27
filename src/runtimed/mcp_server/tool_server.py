"""The MCPServer the tools register on: it refuses unknown argument names, turns daemon
errors into tool errors an agent can act on, and lists the open notebooks' cells as
resources.

It lives apart from ``server`` (which builds it and registers the tools) so that the
``tools_*`` modules import it and ``server`` imports them: imports go one way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, Icon, InputRequiredResult, Resource, ToolAnnotations

from runtimed.errors import RuntimedError
from runtimed.mcp_server.notebooks import Notebooks

READ_ONLY = ToolAnnotations(read_only_hint=True)
ADDITIVE = ToolAnnotations(destructive_hint=False)
DESTRUCTIVE = ToolAnnotations(destructive_hint=True)

# What a RuntimedError code means for an agent, added to the daemon's message.
_HINTS = {
    "disconnected": "the connection to the daemon dropped; retry the call (it reconnects)",
    "no_kernel": "the notebook has no kernel yet: execute a cell to start one",
    "kernel_not_running": "call restart_kernel() to get a working kernel",
    "timeout": "the daemon is busy or stuck; kernel_status() shows the kernel's state",
}


def agent_error(exc: RuntimedError) -> ToolError:
    """A daemon error as a tool error, with what to do about it."""
    hint = _HINTS.get(exc.code)
    message = exc.message if hint is None or hint in exc.message else f"{exc.message} ({hint})"
    return ToolError(message)


class RuntMCPServer(MCPServer[Any]):
    """An MCPServer that refuses unknown arguments, turns daemon errors into tool errors,
    and lists every cell of the open notebooks as a resource."""

    def __init__(self, notebooks: Notebooks, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.notebooks = notebooks
        self._tool_params: dict[str, list[str]] = {}

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        super().add_tool(fn, name, title, description, annotations, icons, meta, structured_output)
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self._tool_params[name or fn.__name__] = params

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Any = None
    ) -> CallToolResult | InputRequiredResult:
        accepted = self._tool_params.get(name)
        if accepted is not None:
            unknown = sorted(set(arguments) - set(accepted))
            if unknown:
                shown = ", ".join(repr(u)[:60] for u in unknown[:10])
                raise ToolError(
                    f"{name} has no argument(s) {shown}; it takes: "
                    + (", ".join(accepted) or "no arguments")
                )
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, RuntimedError):
                raise ToolError(f"{name} failed: {agent_error(cause)}") from cause
            if isinstance(cause, ConnectionError | OSError):
                raise ToolError(
                    f"{name} failed: lost the connection to the daemon: {cause}"
                ) from cause
            raise

    async def list_resources(self) -> list[Resource]:
        listed = await super().list_resources()
        for nb in self.notebooks.open_notebooks:
            for index, cell in enumerate(nb.session.document.get_cells()):
                first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
                listed.append(
                    Resource(
                        uri=f"notebook://cells/{cell.id}",
                        name=f"{nb.label} [{index}] {cell.cell_type}: {first}".rstrip(": "),
                        description=f"cell {index} of {nb.label}: source and outputs",
                        mime_type="text/plain",
                    )
                )
        return listed
