"""An anywidget's front-end code, kept out of its runtime-document entry.

An anywidget model (``_model_module: "anywidget"``) carries its JavaScript module and
its CSS as the state strings ``_esm`` and ``_css``: their source text (a bundled widget
is often hundreds of KB) or a URL. A widget's entry is written whole at every change of
any key, and sent to every peer each time, so the daemon takes source text out of the
state and stores it as a blob (``text/javascript``, ``text/css``), referenced from the
entry's ``buffers`` at the key's path as a binary value is. Clients read it back as text
(``documents/widgets.py``: ``resolve_state``; the page: ``web/src/widgets/``). URLs
stay in the state as they are.
"""

from __future__ import annotations

from typing import Any

ANYWIDGET_MODULE = "anywidget"
#: The state keys that hold code, and the media type each is stored as.
CODE_KEYS = {"_esm": "text/javascript", "_css": "text/css"}


def is_anywidget(state: dict[str, Any]) -> bool:
    return state.get("_model_module") == ANYWIDGET_MODULE


def take_code(state: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """Remove the code keys' source text from ``state`` (an anywidget's state or state
    update); returns ``(key, utf-8 bytes, media type)`` for each. A URL or an empty
    value stays in ``state``."""
    taken = []
    for key, media_type in CODE_KEYS.items():
        value = state.get(key)
        if isinstance(value, str) and value and not _is_url(value):
            del state[key]
            taken.append((key, value.encode("utf-8"), media_type))
    return taken


def _is_url(value: str) -> bool:
    # anywidget's own test (its loader imports these instead of the text).
    return value.startswith(("http://", "https://"))
