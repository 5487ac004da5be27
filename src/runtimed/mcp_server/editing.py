"""Targeted source edits: replace one literal match or one regex match, nothing else.

An edit that would be ambiguous is refused with where the matches are, so the agent can
add context and try again instead of changing the wrong place. A regex runs in a worker
process with a time bound (``patterns``); this module only turns its matches into an edit.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from mcp.server.mcpserver.exceptions import ToolError

from runtimed.mcp_server.arguments import MAX_SOURCE_CHARS
from runtimed.mcp_server.patterns import KEEP_SPANS, Matches

_MAX_REPORTED = 5
#: Lines of a diff shown after an edit; a bigger change is summed up in one line.
DIFF_LINES = 200


@dataclass(frozen=True)
class Edit:
    """The new source, and where the replaced span was (character offsets)."""

    source: str
    start: int
    end: int
    replaced: str


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _where(text: str, found: Matches) -> str:
    shown = ", ".join(
        f"line {_line_of(text, start)} (offset {start})" for start, _ in found.spans[:_MAX_REPORTED]
    )
    more = found.count - min(len(found.spans), _MAX_REPORTED)
    return shown + (f" and {more}{'+' if found.capped else ''} more" if more > 0 else "")


def _edited(source: str, start: int, end: int, content: str) -> Edit:
    new = source[:start] + content + source[end:]
    if len(new) > MAX_SOURCE_CHARS:
        raise ToolError(
            f"the edited source would have {len(new)} characters; a cell holds at most "
            f"{MAX_SOURCE_CHARS}"
        )
    return Edit(new, start, end, source[start:end])


def find_literal(source: str, needle: str, skip: int = 0, length: int | None = None) -> Matches:
    """Where ``needle`` occurs; each span starts ``skip`` characters in (past the context
    before) and is ``length`` long (all of the needle by default)."""
    length = len(needle) - skip if length is None else length
    # Overlapping occurrences, so "aa" in "aaa" is ambiguous; only the first few are
    # found one by one (each find may scan a long needle again), the rest just counted.
    spans: list[tuple[int, int]] = []
    at = source.find(needle)
    while at != -1 and len(spans) < KEEP_SPANS:
        spans.append((at + skip, at + skip + length))
        at = source.find(needle, at + 1)
    count = len(spans) if at == -1 else max(len(spans) + 1, source.count(needle))
    return Matches(tuple(spans), count)


def replace_match(
    source: str, match: str, content: str, context_before: str = "", context_after: str = ""
) -> Edit:
    """Replace the one literal occurrence of ``match`` that is preceded by
    ``context_before`` and followed by ``context_after``."""
    if not match:
        raise ToolError("match must not be empty; use replace_regex with \\Z to append")
    needle = context_before + match + context_after
    found = find_literal(source, needle, len(context_before), len(match))
    if found.count != 1:
        raise ToolError(_count_message("the text", found, source, literal=True))
    start, end = found.spans[0]
    return _edited(source, start, end, content)


def replace_regex(source: str, found: Matches, content: str) -> Edit:
    """Replace the one span a pattern matched (``found``, from ``PatternRunner.find``)
    with literal ``content``."""
    if found.count != 1:
        raise ToolError(_count_message("the pattern", found, source, literal=False))
    start, end = found.spans[0]
    return _edited(source, start, end, content)


def _count_message(what: str, found: Matches, source: str, literal: bool) -> str:
    if found.count == 0:
        fix = (
            "check spaces, indentation and line breaks (it must match exactly), or read "
            "the cell again with get_cell"
            if literal
            else "check the pattern against the cell's source (get_cell shows it)"
        )
        return f"{what} was not found in the cell's source ({len(source)} characters); {fix}"
    fix = (
        "add context_before/context_after to pick one"
        if literal
        else "make the pattern more specific (anchors, lookarounds) to match one"
    )
    times = f"{found.count}+" if found.capped else str(found.count)
    return f"{what} matches {times} times, at {_where(source, found)}; {fix}"


def _line_start(text: str, at: int) -> int:
    return text.rfind("\n", 0, at) + 1


def _line_end(text: str, at: int) -> int:
    end = text.find("\n", at)
    return len(text) if end == -1 else end


def diff(old: str, edit: Edit) -> str:
    """The changed lines and one line around them. Only the edited region is compared:
    a diff of a whole long cell could take seconds."""
    new = edit.source
    added_end = edit.end + len(new) - len(old)  # where the new content ends in ``new``
    start = _line_start(old, edit.start)
    start = _line_start(old, start - 1) if start > 0 else 0
    old_end = _line_end(old, edit.end)
    old_end = _line_end(old, old_end + 1) if old_end < len(old) else old_end
    new_end = _line_end(new, added_end)
    new_end = _line_end(new, new_end + 1) if new_end < len(new) else new_end
    before, after = old[start:old_end].splitlines(), new[start:new_end].splitlines()
    if len(before) + len(after) > DIFF_LINES:
        return f"(replaced {len(before)} line(s) with {len(after)}; get_cell shows the result)"
    lines = difflib.unified_diff(before, after, "before", "after", n=1, lineterm="")
    return "\n".join(line for line in list(lines)[2:] if not line.startswith("@@")) or (
        "(no change)"
    )
