"""Tools for cells: read, create, edit, move, delete, clear; targeted replacements."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ContentBlock
from pydantic import Field

from runtimed.errors import RuntimedError
from runtimed.mcp_server import editing
from runtimed.mcp_server.arguments import (
    DEFAULT_TIMEOUT,
    MAX_OFFSET,
    MAX_PATTERN_CHARS,
    CellId,
    EditTimeout,
    Index,
    NotebookArg,
    RunArg,
    Text,
)
from runtimed.mcp_server.execution import run_cell
from runtimed.mcp_server.notebooks import Notebooks, OpenNotebook
from runtimed.mcp_server.outputs import OUTPUT_CHARS, Budget, more_hint, output_text, page
from runtimed.mcp_server.patterns import PATTERN_TIMEOUT, PatternRunner
from runtimed.mcp_server.tool_server import ADDITIVE, DESTRUCTIVE, READ_ONLY, RuntMCPServer
from runtimed.mcp_server.views import answer, cell_blocks, notebook_cells, run_blocks, text

#: Times replace_regex runs its pattern again when the cell changed while it ran.
EDIT_ATTEMPTS = 3


def cell_of(nb: OpenNotebook, cell_id: str) -> tuple[int, Any]:
    document = nb.session.document
    try:
        return document.index_of(cell_id), document.get_cell(cell_id)
    except RuntimedError:
        raise ToolError(
            f"cell {cell_id!r} is not in {nb.label}; get_all_cells() lists the cell ids"
        ) from None


async def _after_edit(
    notebooks: Notebooks,
    nb: OpenNotebook,
    cell_id: str,
    message: str,
    run: bool,
    timeout: float,
    structured: dict[str, Any],
) -> CallToolResult:
    if not run:
        return answer(message, structured)
    outcome = await run_cell(notebooks, nb, cell_id, timeout)
    blocks: list[ContentBlock] = [text(message)]
    blocks += await run_blocks(outcome, Budget(), timeout)
    return answer(blocks, {**structured, **outcome.summary()})


def register(server: RuntMCPServer, notebooks: Notebooks, patterns: PatternRunner) -> None:
    @server.tool(annotations=READ_ONLY)
    async def get_cell(
        cell_id: CellId,
        output_index: Annotated[
            Index | None, Field(description="Read only this output (0-based), from `offset` on")
        ] = None,
        offset: Annotated[
            int, Field(ge=0, le=MAX_OFFSET, description="With output_index: first character")
        ] = 0,
        max_chars: Annotated[
            int, Field(ge=100, le=200_000, description="With output_index: characters to read")
        ] = OUTPUT_CHARS,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Read one cell: its source and its outputs (text, errors, images). Long outputs
        are cut; the note in them says which output_index/offset reads the rest."""
        nb = notebooks.get(notebook)
        await nb.ready()
        index, cell = cell_of(nb, cell_id)
        if output_index is None:
            return answer(await cell_blocks(nb, index, cell, Budget()))
        if output_index >= len(cell.outputs):
            raise ToolError(
                f"cell {cell_id} has {len(cell.outputs)} output(s); use 0..{len(cell.outputs) - 1}"
            )
        whole = await output_text(cell.outputs[output_index], nb.session.get_blob)
        return answer(page(whole, offset, max_chars, more_hint(cell_id, output_index)))

    @server.tool(annotations=READ_ONLY)
    async def get_all_cells(
        include_outputs: Annotated[
            bool, Field(description="Also show each cell's outputs as text (shortened)")
        ] = False,
        start: Annotated[Index, Field(description="First cell index (0-based)")] = 0,
        end: Annotated[
            Index | None, Field(description="Stop before this cell index; omit for the end")
        ] = None,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """The notebook's cells in order: index, type, id, execution count, running/queued
        state and source (long sources are shortened: get_cell shows all)."""
        nb = notebooks.get(notebook)
        await nb.ready()
        if end is not None and end < start:
            raise ToolError(f"end ({end}) must not be before start ({start})")
        return answer(await notebook_cells(nb, start, end, include_outputs))

    @server.tool(annotations=ADDITIVE)
    async def create_cell(
        source: Annotated[Text, Field(description="The cell's source (at most 10 M chars)")] = "",
        cell_type: Annotated[
            Literal["code", "markdown", "raw"], Field(description="Kind of cell")
        ] = "code",
        index: Annotated[
            Index | None, Field(description="Insert at this position (0 = top)")
        ] = None,
        after: Annotated[
            CellId | None, Field(description="Insert right after the cell with this id")
        ] = None,
        run: RunArg = False,
        timeout: EditTimeout = DEFAULT_TIMEOUT,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Add a cell (at the end unless index or after says where) and, with run=true,
        execute it. Everyone in the notebook sees it at once."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        if index is not None and after is not None:
            raise ToolError("give index or after, not both")
        if run and cell_type != "code":
            raise ToolError(f"run=true needs a code cell; a {cell_type} cell does not run")
        count = len(session.document.get_cells())
        if after is not None:
            index = cell_of(nb, after)[0] + 1
        elif index is not None and index > count:
            raise ToolError(f"index {index} is past the end: the notebook has {count} cell(s)")
        cell_id = await session.create_cell(source, cell_type, index)
        at = cell_of(nb, cell_id)[0]
        return await _after_edit(
            notebooks,
            nb,
            cell_id,
            f"created {cell_type} cell {cell_id} at [{at}]",
            run,
            timeout,
            {"cell_id": cell_id, "index": at},
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def set_cell(
        cell_id: CellId,
        source: Annotated[
            Text, Field(description="The new source, replacing all of it (at most 10 M chars)")
        ],
        run: RunArg = False,
        timeout: EditTimeout = DEFAULT_TIMEOUT,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Replace a cell's source (a minimal edit, so others' concurrent edits elsewhere in
        the cell survive) and, with run=true, execute it. For a small change prefer
        replace_match."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        index, cell = cell_of(nb, cell_id)
        if run and cell.cell_type != "code":
            raise ToolError(f"run=true needs a code cell; cell {cell_id} is {cell.cell_type}")
        await session.set_source(cell_id, source)
        return await _after_edit(
            notebooks,
            nb,
            cell_id,
            f"set the source of [{index}] {cell_id}",
            run,
            timeout,
            {"cell_id": cell_id, "index": index},
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_cell(cell_id: CellId, notebook: NotebookArg = None) -> CallToolResult:
        """Delete a cell (for everyone in the notebook)."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        index, _ = cell_of(nb, cell_id)
        await session.delete_cell(cell_id)
        return answer(f"deleted [{index}] {cell_id}", {"cell_id": cell_id, "index": index})

    @server.tool(annotations=ADDITIVE)
    async def move_cell(
        cell_id: CellId,
        index: Annotated[
            Index | None, Field(description="New position (0 = top; past the end = last)")
        ] = None,
        after: Annotated[CellId | None, Field(description="Move right after this cell id")] = None,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Move a cell to a new position: give index, or after=<cell id>."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        if (index is None) == (after is None):
            raise ToolError("give exactly one of index or after")
        old, _ = cell_of(nb, cell_id)
        if after is not None:
            if after == cell_id:
                raise ToolError("a cell cannot move after itself")
            cell_of(nb, after)
            others = [c for c in session.document.cell_ids() if c != cell_id]
            index = others.index(after) + 1
        assert index is not None
        index = min(index, len(session.document.cell_ids()) - 1)
        await session.move_cell(cell_id, index)
        new = cell_of(nb, cell_id)[0]
        return answer(
            f"moved {cell_id} from [{old}] to [{new}]", {"cell_id": cell_id, "index": new}
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def clear_outputs(
        cell_id: Annotated[
            CellId | None, Field(description="The cell to clear; omit to clear every cell")
        ] = None,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Remove the outputs of one code cell, or of all of them."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        if cell_id is not None:
            _, cell = cell_of(nb, cell_id)
            if cell.cell_type != "code":
                raise ToolError(f"cell {cell_id} is a {cell.cell_type} cell: it has no outputs")
            targets = [cell_id]
        else:
            targets = [
                c.id for c in session.document.get_cells() if c.cell_type == "code" and c.outputs
            ]
        for target in targets:
            await session.clear_outputs(target)
        return answer(f"cleared the outputs of {len(targets)} cell(s)", {"cleared": targets})

    @server.tool(annotations=DESTRUCTIVE)
    async def replace_match(
        cell_id: CellId,
        match: Annotated[
            Text, Field(description="Literal text to replace; it must occur exactly once")
        ],
        content: Annotated[Text, Field(description="Literal replacement text")],
        context_before: Annotated[
            Text, Field(description="Literal text right before the match, to pick one")
        ] = "",
        context_after: Annotated[
            Text, Field(description="Literal text right after the match, to pick one")
        ] = "",
        run: RunArg = False,
        timeout: EditTimeout = DEFAULT_TIMEOUT,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Replace one exact occurrence of some text in a cell's source; the best way to
        make a small edit. Fails (changing nothing) when the text occurs 0 or 2+ times,
        saying where: then add context_before/context_after."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        _, cell = cell_of(nb, cell_id)
        edit = editing.replace_match(cell.source, match, content, context_before, context_after)
        return await _apply(notebooks, nb, session, cell_id, cell.source, edit, run, timeout)

    @server.tool(annotations=DESTRUCTIVE)
    async def replace_regex(
        cell_id: CellId,
        pattern: Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_PATTERN_CHARS,
                description="Python regular expression (re.MULTILINE) that must match exactly "
                "once; e.g. '\\Z' is the end of the cell, '(?=^def f)' a point before a line. "
                f"It runs for at most {PATTERN_TIMEOUT:g} s (past it: a regex_timeout error, "
                "nothing changed)",
            ),
        ],
        content: Annotated[Text, Field(description="Literal replacement text (no backreferences)")],
        run: RunArg = False,
        timeout: EditTimeout = DEFAULT_TIMEOUT,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Replace the one span a regular expression matches in a cell's source (for
        insertions at an anchor or structural edits). Fails, changing nothing, unless the
        pattern matches exactly once."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        source = cell_of(nb, cell_id)[1].source
        for _ in range(EDIT_ATTEMPTS):
            found = await patterns.find(pattern, source)
            # The pattern ran in another process while others could edit the cell: the
            # edit applies only to the source it was found in.
            now = cell_of(nb, cell_id)[1].source
            if now == source:
                edit = editing.replace_regex(source, found, content)
                return await _apply(notebooks, nb, session, cell_id, source, edit, run, timeout)
            source = now
        raise ToolError(
            f"cell {cell_id} changed while the pattern ran, {EDIT_ATTEMPTS} times; nothing "
            "changed: try again"
        )


async def _apply(
    notebooks: Notebooks,
    nb: OpenNotebook,
    session: Any,
    cell_id: str,
    old: str,
    edit: editing.Edit,
    run: bool,
    timeout: float,
) -> CallToolResult:
    await session.set_source(cell_id, edit.source)
    line = old.count("\n", 0, edit.start) + 1
    message = f"edited {cell_id} at line {line}:\n{editing.diff(old, edit)}"
    return await _after_edit(
        notebooks, nb, cell_id, message, run, timeout, {"cell_id": cell_id, "line": line}
    )
