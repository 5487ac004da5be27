"""Tools for notebooks as a whole: list, open, create, save, close."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from runtimed.mcp_server.arguments import NewPathArg, NotebookArg, PathArg, SavePathArg, Specs
from runtimed.mcp_server.notebooks import (
    Notebooks,
    OpenNotebook,
    check_save_target,
    notebook_path,
)
from runtimed.mcp_server.tool_server import ADDITIVE, READ_ONLY, RuntMCPServer
from runtimed.mcp_server.views import answer

MAX_CWD_FILES = 50


def cell_lines(nb: OpenNotebook) -> str:
    """One line per cell: index, type, id, first line of source."""
    lines = []
    for index, cell in enumerate(nb.session.document.get_cells()):
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)"
        if len(first) > 80:
            first = first[:80] + "…"
        lines.append(f"[{index}] {cell.cell_type} {cell.id}: {first}")
    return "\n".join(lines) if lines else "(no cells yet)"


def describe(nb: OpenNotebook, verb: str, extra: str = "") -> CallToolResult:
    kernel = nb.session.kernel
    cells = nb.session.document.get_cells()
    lifecycle = kernel.get("lifecycle") or "not started"
    head = (
        f"{verb} {nb.label}\nnotebook_id: {nb.notebook_id}\n"
        f"file: {nb.file or '(none yet: save_notebook(path=...) writes one)'}\n"
        f"kernel: {lifecycle}"
        + (f" ({kernel['env_source']})" if kernel.get("env_source") else "")
        + extra
        + f"\ncells ({len(cells)}):\n{cell_lines(nb)}"
    )
    return answer(
        head,
        {
            "notebook_id": nb.notebook_id,
            "path": nb.file,
            "cells": len(cells),
            "kernel": lifecycle,
        },
    )


def _cwd_notebooks() -> list[str]:
    try:
        found = sorted(str(p) for p in Path.cwd().glob("*.ipynb") if p.is_file())
    except OSError:
        return []
    return found[:MAX_CWD_FILES]


def register(server: RuntMCPServer, notebooks: Notebooks) -> None:
    @server.tool(annotations=READ_ONLY)
    async def list_notebooks() -> CallToolResult:
        """List notebooks you can work in: rooms open in runtimed right now (with their
        peers and kernel), files used recently through this server, and .ipynb files in the
        working directory. Open one with open_notebook(path)."""
        rooms = await notebooks.rooms()
        recent = notebooks.recent()
        in_cwd = _cwd_notebooks()
        lines = [f"open rooms ({len(rooms)}):"]
        for room in rooms:
            marks = [
                m
                for m, on in (("current", room["current"]), ("open here", room["open_here"]))
                if on
            ]
            lines.append(
                f"  {room['path'] or room['notebook_id']}  peers={room['peers']} "
                f"kernel={room['kernel'] or '-'}"
                + (f"  [{', '.join(marks)}]" if marks else "")
                + ("" if room["path"] else f"  (untitled: notebook_id {room['notebook_id']})")
            )
        lines.append(f"recent files ({len(recent)}):")
        lines += [f"  {r['path']}" + ("" if r["exists"] else "  (deleted)") for r in recent]
        lines.append(f"notebooks in {os.getcwd()} ({len(in_cwd)}):")
        lines += [f"  {p}" for p in in_cwd]
        return answer("\n".join(lines), {"rooms": rooms, "recent": recent, "cwd": in_cwd})

    @server.tool(annotations=ADDITIVE)
    async def open_notebook(
        path: PathArg,
        start_kernel: Annotated[
            bool, Field(description="Start its kernel now, so the first run is quick")
        ] = True,
    ) -> CallToolResult:
        """Open a notebook file and make it the current notebook. If people or programs
        already have it open you join them: you all share the cells, outputs and kernel.
        Returns its cells (index, id, first line). Use create_notebook for a new one."""
        nb, was_open = await notebooks.open(path, start_kernel)
        return describe(nb, "already open, now current:" if was_open else "opened")

    @server.tool(annotations=ADDITIVE)
    async def create_notebook(
        path: NewPathArg = None,
        dependencies: Specs = None,
        start_kernel: Annotated[
            bool, Field(description="Start its kernel now, so the first run is quick")
        ] = True,
    ) -> CallToolResult:
        """Create a new, empty notebook and make it the current one. Others can join it
        (list_notebooks shows it). With dependencies, its kernel runs in an environment
        built from them (cached: the same list is instant the next time)."""
        nb = await notebooks.create(path, dependencies, start_kernel)
        extra = "\ndependencies: " + ", ".join(dependencies) if dependencies else ""
        return describe(nb, "created", extra)

    @server.tool(annotations=ADDITIVE)
    async def save_notebook(
        path: SavePathArg = None,
        force: Annotated[
            bool,
            Field(
                description="Overwrite the notebook's file even if it changed on disk since "
                "it was opened (someone else's changes there are lost), or a file at path "
                "that is not a notebook"
            ),
        ] = False,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Save a notebook as an ordinary .ipynb file (outputs and images included)."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        if path is None and nb.file is None:
            raise ToolError(
                "this notebook has no file yet; pass a path, e.g. "
                "save_notebook(path='analysis.ipynb')"
            )
        target = notebook_path(path) if path is not None else Path(str(nb.file))
        # In a thread: it may read a big file to see whether it is a notebook.
        await asyncio.to_thread(check_save_target, target, nb.file, force)
        written = await session.save(target, force=force)
        if nb.path is None:
            nb.saved_path = written
        notebooks.saved_as(written)
        return answer(f"saved {nb.label} to {written}", {"path": written})

    @server.tool(annotations=ADDITIVE)
    async def close_notebook(notebook: NotebookArg = None) -> CallToolResult:
        """Stop working in a notebook: this server leaves its room. The notebook, its
        kernel and its outputs stay for everyone else (runtimed keeps an unused room for a
        while, then frees its kernel). Unsaved changes stay in runtimed, not in the file."""
        nb = await notebooks.close(notebook)
        current = notebooks.current_id
        return answer(
            f"closed {nb.label}" + (f"; current notebook is now {current}" if current else "")
        )
