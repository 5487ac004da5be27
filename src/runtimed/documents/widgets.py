"""Widget models in the runtime document: the map ``widgets`` {model_id: entry}.

The daemon is the one frontend of a room's kernel comms (``daemon/widgets/``). Every live
``jupyter.widget`` comm is one entry, written only by the daemon and synced read-only to
every peer with the rest of the runtime document, so a client that joins late reads
every live widget at its current state. An entry is::

    {"target_name": "jupyter.widget",
     "state": {...},       # the model's JSON state, latest value of every key
     "buffers": [{"path": ["value"], "blob": sha256, "size": n,
                  "media_type": "application/octet-stream"}, ...]}

Binary values (``buffer_paths`` of a comm message) are kept out of ``state`` and stored
as blobs (``{"path", "base64"}`` when the daemon has no blob store). So is an anywidget's
front-end code (``_esm``, ``_css``: ``media_type`` ``text/javascript`` / ``text/css``),
which a client reads back as text. Pure helpers here merge a comm message into an entry
and put the values back for a client.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Mapping
from typing import Any

from pycrdt import Doc, Map

from runtimed.documents.notebook import _ints

WIDGETS_MAP = "widgets"
WIDGET_TARGET = "jupyter.widget"
#: The MIME type of an output that shows a widget: ``{"model_id": ..., "version_major"}``.
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

Entry = dict[str, Any]
BufferPath = list[str | int]


def new_entry(target_name: str) -> Entry:
    return {"target_name": target_name, "state": {}, "buffers": []}


def merge_state(
    entry: Entry, state: Mapping[str, Any], buffers: list[dict[str, Any]] | None = None
) -> None:
    """Apply a state update (``state`` and the stored ``buffers`` it came with, each with
    its ``path``) to ``entry`` in place: the latest value of every key wins."""
    entry["state"].update(state)
    new = buffers or []
    replaced = {tuple(b["path"]) for b in new}
    keep = [
        b
        for b in entry["buffers"]
        if tuple(b["path"]) not in replaced and (not b["path"] or b["path"][0] not in state)
    ]
    entry["buffers"] = keep + new


def put_at(state: dict[str, Any], path: BufferPath, value: Any) -> None:
    """Set ``state[path[0]][path[1]]...`` to ``value`` (as ipywidgets' _put_buffers)."""
    target: Any = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def resolve_state(entry: Mapping[str, Any], fetch: Callable[[str], bytes]) -> dict[str, Any]:
    """The model's state with its binary values back in place, as bytes (``text/*``
    ones, an anywidget's code, as str)."""
    state = copy.deepcopy(dict(entry.get("state") or {}))
    for buffer in entry.get("buffers") or []:
        path = list(buffer.get("path") or [])
        if not path:
            continue
        if "blob" in buffer:
            data = fetch(str(buffer["blob"]))
        else:
            data = base64.b64decode(str(buffer.get("base64", "")))
        value: bytes | str = data
        if str(buffer.get("media_type", "")).startswith("text/"):
            value = data.decode("utf-8", "replace")
        try:
            put_at(state, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # a path the state no longer has
    return state


def blob_digests(entries: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Every blob the entries' buffers refer to."""
    return {str(b["blob"]) for e in entries.values() for b in e.get("buffers") or [] if "blob" in b}


class WidgetsMap:
    """The ``widgets`` map of a runtime document."""

    def __init__(self, doc: Doc[Any]) -> None:
        self.map: Map[Any] = doc.get(WIDGETS_MAP, type=Map)

    def set(self, model_id: str, entry: Entry) -> None:
        self.map[model_id] = entry  # stored as a JSON value: a snapshot of it now

    def delete(self, model_id: str) -> None:
        if model_id in self.map:
            del self.map[model_id]

    def clear(self) -> None:
        for model_id in list(self.map.keys()):
            del self.map[model_id]

    def entries(self) -> dict[str, Entry]:
        """Every live model's entry (numbers that Yjs stored as doubles back to ints)."""
        values = self.map.to_py() or {}
        return {str(k): dict(_ints(v)) for k, v in values.items() if isinstance(v, dict)}

    def __len__(self) -> int:
        return len(self.map)
