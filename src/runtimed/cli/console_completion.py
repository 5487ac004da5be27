"""Tab completion and help in `runt run`, from the kernel (``complete`` and ``inspect``
room requests): the menu shows each match's type as IPython's does (the kernel's
``_jupyter_types_experimental`` metadata); ``obj?`` / ``obj??`` and Shift-Tab show the
kernel's help on a name."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from runtimed.errors import RuntimedError

if TYPE_CHECKING:
    from runtimed.client.async_session import AsyncSession

#: ``name?``, ``name??``, ``?name``, ``??name`` (a dotted name, maybe subscripted calls
#: aside): what IPython treats as a help request rather than code.
_HELP = re.compile(r"^\s*(\?{1,2})?\s*([A-Za-z_][\w.]*(?:\[[^\]]*\])?)\s*(\?{1,2})?\s*$")


def help_request(code: str) -> tuple[str, int] | None:
    """``(name, detail_level)`` when ``code`` asks for help (``len?``: 0, ``len??``: 1)."""
    match = _HELP.match(code)
    if match is None or "\n" in code.strip():
        return None
    before, name, after = match.groups()
    marks = before or after
    if not marks or (before and after):
        return None
    return name, len(marks) - 1


def _types(metadata: dict[str, Any]) -> dict[tuple[int, int, str], str]:
    """(start, end, text) -> type, from IPython's experimental completion metadata."""
    found: dict[tuple[int, int, str], str] = {}
    for item in metadata.get("_jupyter_types_experimental") or []:
        if isinstance(item, dict) and "text" in item:
            key = (int(item.get("start", 0)), int(item.get("end", 0)), str(item["text"]))
            found[key] = str(item.get("type") or "")
    return found


def completions(reply: dict[str, Any], cursor: int) -> Iterable[Completion]:
    """prompt_toolkit completions of a ``complete`` reply for a cursor at ``cursor``."""
    start, end = int(reply.get("cursor_start", cursor)), int(reply.get("cursor_end", cursor))
    types = _types(dict(reply.get("metadata") or {}))
    by_text = {text: kind for (_, _, text), kind in types.items()}
    for match in reply.get("matches") or []:
        text = str(match)
        kind = types.get((start, end, text)) or by_text.get(text, "")
        meta = "" if kind == "<unknown>" else kind
        yield Completion(text, start_position=start - cursor, display=text, display_meta=meta)


class KernelCompleter(Completer):
    """Asks the runtime's kernel; completes only on Tab (never while typing)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        return []  # only the async path is used (prompt_async)

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        if not complete_event.completion_requested or not document.text.strip():
            return
        try:
            reply = await self.session.complete(document.text, document.cursor_position)
        except RuntimedError:
            return  # a busy or dead kernel: no menu rather than an error mid-typing
        for completion in completions(reply, document.cursor_position):
            yield completion


async def help_text(session: AsyncSession, code: str, cursor: int, level: int) -> str:
    """The kernel's help on the name at ``cursor`` (ANSI colours kept), or a one-line
    'no help' message."""
    try:
        reply = await session.inspect(code, cursor, level)
    except RuntimedError as exc:
        return f"no help: {exc.message}"
    data = reply.get("data") or {}
    if not reply.get("found") or "text/plain" not in data:
        name = _name_at(code, cursor)
        return f"Object `{name}` not found." if name else "nothing to inspect here"
    return str(data["text/plain"]).rstrip("\n")


def _name_at(code: str, cursor: int) -> str:
    left = re.search(r"[\w.]*$", code[:cursor])
    right = re.match(r"\w*", code[cursor:])
    return (left.group(0) if left else "") + (right.group(0) if right else "")
