"""The REST API's own bodies: requests (untagged: a REST client sends no ``type``) and
the replies the socket protocol has no type for. Everything else the API answers with is
the socket protocol's msgspec types (``protocol/``)."""

from __future__ import annotations

from typing import Any

import msgspec

from runtimed.protocol.room import ExecutionRecord

# --- requests --------------------------------------------------------------------------


class StartRuntimeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/runtimes``: a kernel in a room of its own (``runt start``)."""

    kernel: str = "python3"
    env_source: str = "auto"
    #: The kernel's working directory: an existing absolute directory.
    cwd: str | None = None


class ExecuteBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/runtimes/{id}/execute``: code run as a new cell of the runtime's room."""

    code: str


class ExecuteCellBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/notebooks/{id}/cells/{cell}/execute``: ``stdin``, the id of the
    caller's input connection (``/ws/input/{id}``), which then answers the cell's
    ``input()``; none: ``input()`` raises StdinNotAvailable."""

    stdin: str | None = None


class OpenNotebookBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/notebooks``: open an .ipynb (created when missing) by absolute path;
    no path: a new untitled notebook."""

    path: str | None = None


class SaveNotebookBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/notebooks/{id}/save``: to its own file, or to ``path`` (absolute)."""

    path: str | None = None
    #: Overwrite the notebook's own file even if it changed on disk since it was loaded.
    force: bool = False


# --- replies ---------------------------------------------------------------------------


class ExecutionResult(msgspec.Struct, frozen=True):
    """An execution asked for over REST: its record (``status`` queued or running while
    it goes on: the reply is then 202) and, once it ended, its cell's outputs (large ones
    as blob references, fetched at ``/blob/{sha}``)."""

    notebook_id: str
    cell_id: str
    execution: ExecutionRecord
    outputs: list[dict[str, Any]] | None = None


class CellView(msgspec.Struct, frozen=True):
    """One cell of ``GET /api/notebooks/{id}``, with the last execution the room knows of
    (full records at ``GET /api/executions/{id}``)."""

    id: str
    cell_type: str
    source: str
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    last_execution_id: str | None = None
    last_execution_status: str | None = None


class NotebookView(msgspec.Struct, frozen=True):
    """An open notebook: ``GET /api/notebooks/{id}``."""

    notebook_id: str
    path: str | None
    epoch: str
    peers: int
    cells: list[CellView]
