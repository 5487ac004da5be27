"""Tools for the notebook's live widgets (ipywidgets): read them, change them, click them.

The widgets are the kernel's, kept by the daemon in the room's runtime document; the
agent changes one as a person dragging a slider would (``set_widget_state``: the kernel's
observers run, every client sees the new value) or clicks a button
(``send_widget_message`` with ``{"event": "click"}``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from runtimed.mcp_server.arguments import MAX_ID_CHARS, MAX_SOURCE_CHARS, NotebookArg
from runtimed.mcp_server.notebooks import Notebooks
from runtimed.mcp_server.outputs import clip
from runtimed.mcp_server.tool_server import ADDITIVE, READ_ONLY, RuntMCPServer
from runtimed.mcp_server.views import answer

#: Models that only style or lay out another (listed only when asked for by id).
_PARTS = ("LayoutModel", "DescriptionStyleModel", "SliderStyleModel", "ButtonStyleModel")
#: Widgets listed by get_widgets (the rest are counted).
MAX_LISTED = 200
#: Characters of one value in a listing.
VALUE_CHARS = 200

ModelId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The widget's model id (get_widgets lists them; a cell showing a widget "
        "has it in its application/vnd.jupyter.widget-view+json output)",
    ),
]


def _plain(value: Any) -> Any:
    """JSON for the agent: bytes as their size."""
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_part(state: dict[str, Any]) -> bool:
    name = str(state.get("_model_name") or "")
    return name in _PARTS or name.endswith("StyleModel") or not state.get("_view_name")


def _cut(text: str, limit: int) -> str:
    return clip(text, limit, lambda offset: "get_widgets(model_id) shows it whole")


def _line(model_id: str, state: dict[str, Any]) -> str:
    name = str(state.get("_model_name") or "?").removesuffix("Model")
    parts = [f"{model_id}: {name}"]
    for key in ("description", "value", "options", "disabled"):
        if key in state and state[key] not in ("", None, False):
            shown = json.dumps(_plain(state[key]), ensure_ascii=False)
            parts.append(f"{key}={_cut(shown, VALUE_CHARS)}")
    return " ".join(parts)


def _checked(state: dict[str, Any]) -> dict[str, Any]:
    if not state:
        raise ToolError('state must name at least one trait, e.g. {"value": 42}')
    size = len(json.dumps(state))
    if size > MAX_SOURCE_CHARS:
        raise ToolError(f"state is {size} characters of JSON; at most {MAX_SOURCE_CHARS}")
    return state


def register(server: RuntMCPServer, notebooks: Notebooks) -> None:
    @server.tool(annotations=READ_ONLY)
    async def get_widgets(
        model_id: Annotated[
            str | None,
            Field(max_length=MAX_ID_CHARS, description="One widget's id: its whole state"),
        ] = None,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """The notebook's live widgets (sliders, text boxes, buttons, ...) with their
        current values; with `model_id`, that widget's whole state. Change one with
        set_widget_state, click a button with send_widget_message."""
        session = await notebooks.get(notebook).ready()
        widgets = await session.widgets()
        if model_id is not None:
            if model_id not in widgets:
                raise ToolError(f"no widget {model_id!r}; get_widgets() lists the live ones")
            state = _plain(widgets[model_id])
            body = _cut(json.dumps(state, indent=1, ensure_ascii=False), MAX_SOURCE_CHARS)
            return answer(body, {"model_id": model_id, "state": state})
        shown = {m: s for m, s in widgets.items() if not _is_part(s)}
        lines = [_line(m, s) for m, s in list(shown.items())[:MAX_LISTED]]
        if len(shown) > MAX_LISTED:
            lines.append(f"... and {len(shown) - MAX_LISTED} more")
        if not lines:
            lines.append("no live widgets (a cell that displays one creates it)")
        structured = {
            "widgets": {
                m: {k: _plain(s.get(k)) for k in ("_model_name", "description", "value")}
                for m, s in list(shown.items())[:MAX_LISTED]
            },
            "count": len(shown),
            "models": len(widgets),
        }
        return answer("\n".join(lines), structured)

    @server.tool(annotations=ADDITIVE)
    async def set_widget_state(
        model_id: ModelId,
        state: Annotated[
            dict[str, Any],
            Field(
                max_length=1000,
                description='Traits to change and their new values, e.g. {"value": 42}',
            ),
        ],
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Change a widget as a person would in the page (drag a slider, type in a text
        box): the kernel's observers run, everyone sees the new value. Returns the
        widget's state afterwards (a value the kernel corrects, e.g. past a slider's max,
        shows up in a later get_widgets)."""
        session = await notebooks.get(notebook).ready()
        await session.set_widget_state(model_id, _checked(state))
        after = _plain((await session.widgets()).get(model_id) or {})
        return answer(_line(model_id, after), {"model_id": model_id, "state": after})

    @server.tool(annotations=ADDITIVE)
    async def send_widget_message(
        model_id: ModelId,
        content: Annotated[
            dict[str, Any],
            Field(
                max_length=1000,
                description='The message, e.g. {"event": "click"} to click a Button',
            ),
        ],
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Send a widget's kernel side a custom message: {"event": "click"} clicks a
        Button (its on_click handlers run in the kernel)."""
        session = await notebooks.get(notebook).ready()
        await session.send_widget_message(model_id, _checked(content))
        return answer(f"sent to {model_id}", {"model_id": model_id})
