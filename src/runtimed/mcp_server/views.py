"""What tools answer: cells, executions and notebooks as content an agent can act on.

Every answer says what happened and, where there is a next step (a long run, more
output), the exact call to make.
"""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, ContentBlock, TextContent

from runtimed.mcp_server.execution import Run, running_cells
from runtimed.mcp_server.notebooks import OpenNotebook
from runtimed.mcp_server.outputs import Budget, clip, render_outputs

#: Characters of a cell's source shown in a listing (get_cell shows all of it).
LISTING_SOURCE_CHARS = 3000
#: Characters of one output in a listing.
LISTING_OUTPUT_CHARS = 1500
#: Characters of a whole listing; the cells after are left for the next page.
LISTING_CHARS = 60000


def text(value: str) -> TextContent:
    return TextContent(type="text", text=value)


def answer(
    blocks: list[ContentBlock] | str, structured: dict[str, Any] | None = None
) -> CallToolResult:
    content: list[ContentBlock] = [text(blocks)] if isinstance(blocks, str) else blocks
    return CallToolResult(content=content, structured_content=structured)


def _raw_cell(nb: OpenNotebook, cell_id: str) -> Any:
    """The replica's cell (outputs as stored, blob references unresolved), or None."""
    try:
        return nb.session.document.get_cell(cell_id)
    except Exception:
        return None


def cell_header(index: int, cell: Any, state: str | None) -> str:
    parts = [f"[{index}] {cell.cell_type} {cell.id}"]
    if cell.cell_type == "code":
        count = cell.execution_count
        parts.append(f"In[{count if count is not None else ' '}]")
    if state:
        parts.append(state)
    return " ".join(parts)


async def cell_blocks(
    nb: OpenNotebook,
    index: int,
    cell: Any,
    budget: Budget,
    *,
    state: str | None = None,
    include_outputs: bool = True,
    source_chars: int | None = None,
) -> list[ContentBlock]:
    """A cell: header, source, then its outputs (within ``budget``)."""
    source = cell.source
    if source_chars is not None:
        source = clip(source, source_chars, lambda _: f'get_cell(cell_id="{cell.id}")')
    head = cell_header(index, cell, state) + "\n" + (source if source else "(empty)")
    blocks: list[ContentBlock] = [text(head)]
    if include_outputs and cell.cell_type == "code" and cell.outputs:
        rendered = await render_outputs(cell.outputs, nb.session.get_blob, cell.id, budget)
        if rendered:
            blocks.append(text("outputs:"))
            blocks.extend(rendered)
    return _merge(blocks)


async def notebook_cells(
    nb: OpenNotebook,
    start: int,
    end: int | None,
    include_outputs: bool,
) -> list[ContentBlock]:
    cells = nb.session.document.get_cells()
    states = running_cells(nb)
    chosen = list(enumerate(cells))[start:end]
    budget = Budget(per_output=LISTING_OUTPUT_CHARS, images=False)
    title = f"{nb.label}: {len(cells)} cell(s)"
    if chosen and (chosen[0][0] > 0 or chosen[-1][0] < len(cells) - 1):
        title += f", showing [{chosen[0][0]}]..[{chosen[-1][0]}]"
    blocks: list[ContentBlock] = [text(title)]
    size = 0
    for index, cell in chosen:
        if size > LISTING_CHARS:
            blocks.append(
                text(f"[more cells not shown: this answer is full; get_all_cells(start={index})]")
            )
            break
        shown = await cell_blocks(
            nb,
            index,
            cell,
            budget,
            state=states.get(cell.id),
            include_outputs=include_outputs,
            source_chars=LISTING_SOURCE_CHARS,
        )
        size += sum(len(b.text) for b in shown if isinstance(b, TextContent))
        blocks.extend(shown)
    if not chosen:
        blocks.append(text("(no cells in this range)" if cells else "(the notebook is empty)"))
    return _merge(blocks, "\n\n")


def run_header(run: Run, timeout: float | None = None, error_shown: bool = False) -> str:
    cell, eid = run.cell_id, run.execution_id
    count = f" [{run.execution_count}]" if run.execution_count is not None else ""
    if run.status == "done":
        return f"cell {cell} ran{count}: done (execution_id {eid})"
    if run.status == "error":
        why = f": {run.message}" if run.message and not error_shown else ""
        return f"cell {cell} ran{count} and failed{why} (execution_id {eid})"
    if run.status == "cancelled":
        why = f": {run.message}" if run.message else ""
        return f"cell {cell} did not run, it was cancelled{why} (execution_id {eid})"
    if run.prompt is not None:
        kind = "a password (getpass)" if run.prompt.get("password") else "input"
        return (
            f"cell {cell} is waiting for {kind}: prompt {run.prompt.get('prompt', '')!r} "
            f'(execution_id {eid}). Answer with send_input(execution_id="{eid}", '
            'value="..."), or interrupt_kernel() to stop it.'
        )
    waited = f" after {timeout:g} s" if timeout is not None else ""
    lifecycle = run.nb.session.kernel.get("lifecycle")
    if run.status != "queued":
        where = f"is still running{waited}"
    elif lifecycle in (None, "not_started", "preparing_env", "launching"):
        where = f"is queued{waited}: the kernel is starting ({lifecycle or 'not started'})"
    else:
        where = f"is queued behind {run.ahead} execution(s){waited}"
    return (
        f"cell {cell} {where} (execution_id {eid}). It keeps going: call "
        f'get_results(execution_id="{eid}") to wait for it, or interrupt_kernel() to stop it.'
    )


async def run_blocks(run: Run, budget: Budget, timeout: float | None = None) -> list[ContentBlock]:
    """An execution: what happened, then the cell's outputs (so far)."""
    cell = _raw_cell(run.nb, run.cell_id)
    error_shown = cell is not None and any(o.get("output_type") == "error" for o in cell.outputs)
    blocks: list[ContentBlock] = [text(run_header(run, timeout, error_shown))]
    if cell is None:
        blocks.append(text("(the cell has been deleted since)"))
    elif cell.outputs:
        if not run.finished:
            blocks.append(text("outputs so far:"))
        blocks.extend(await render_outputs(cell.outputs, run.nb.session.get_blob, cell.id, budget))
    elif run.finished:
        blocks.append(text("(no output)"))
    return _merge(blocks)


def _merge(blocks: list[ContentBlock], sep: str = "\n") -> list[ContentBlock]:
    """Consecutive text blocks joined into one (fewer, readable blocks)."""
    merged: list[ContentBlock] = []
    for block in blocks:
        last = merged[-1] if merged else None
        if isinstance(block, TextContent) and isinstance(last, TextContent):
            merged[-1] = text(last.text + sep + block.text)
        else:
            merged.append(block)
    return merged
