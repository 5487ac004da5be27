"""`runt mcp`: an MCP server (official SDK) for agents, and an ordinary client of the daemon.

Agents open or create notebooks, edit cells, run them in the notebook's kernel and read
the outputs, in the same live documents that people and scripts use: everyone sees the
agent's edits and outputs as they happen.

- ``notebooks``: the open notebooks (one ``AsyncSession`` each), recent files, executions
- ``execution``: queue / wait with a timeout / execution ids
- ``outputs``: outputs as agent-friendly content (text, errors, images, cut long text)
- ``views``: cells and executions as tool answers
- ``editing``, ``dependencies``: targeted replacements; inline dependency specs
- ``patterns``, ``pattern_worker``: agents' regular expressions, in worker processes
  killed at a time bound
- ``arguments``: the tools' argument types, each with its bound
- ``tool_server``: the MCPServer the tools register on (unknown arguments, errors)
- ``server``: builds it with the tools (``tools_*``) and the cells as resources
- ``transport``: stdio, or streamable HTTP on 127.0.0.1 with a bearer token
"""

from __future__ import annotations

from runtimed.mcp_server.transport import serve

__all__ = ["serve"]
