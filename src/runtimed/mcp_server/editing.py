"""Targeted source edits: replace one literal match or one regex match, nothing else.

An edit that would be ambiguous is refused with where the matches are, so the agent can
add context and try again instead of changing the wrong place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcp.server.mcpserver.exceptions import ToolError

_MAX_REPORTED = 5


@dataclass(frozen=True)
class Edit:
    """The new source, and where the replaced span was (character offsets)."""

    source: str
    start: int
    end: int
    replaced: str


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _where(text: str, spans: list[tuple[int, int]]) -> str:
    shown = ", ".join(
        f"line {_line_of(text, start)} (offset {start})" for start, _ in spans[:_MAX_REPORTED]
    )
    more = f" and {len(spans) - _MAX_REPORTED} more" if len(spans) > _MAX_REPORTED else ""
    return shown + more


def replace_match(
    source: str, match: str, content: str, context_before: str = "", context_after: str = ""
) -> Edit:
    """Replace the one literal occurrence of ``match`` that is preceded by
    ``context_before`` and followed by ``context_after``."""
    if not match:
        raise ToolError("match must not be empty; use replace_regex with \\Z to append")
    needle = context_before + match + context_after
    spans: list[tuple[int, int]] = []
    at = source.find(needle)
    while at != -1:
        spans.append((at + len(context_before), at + len(context_before) + len(match)))
        at = source.find(needle, at + 1)
    if len(spans) != 1:
        raise ToolError(_count_message("the text", len(spans), source, spans, literal=True))
    start, end = spans[0]
    return Edit(source[:start] + content + source[end:], start, end, source[start:end])


def replace_regex(source: str, pattern: str, content: str) -> Edit:
    """Replace the one span ``pattern`` matches (re.MULTILINE) with literal ``content``."""
    try:
        regex = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise ToolError(f"pattern is not a valid Python regular expression: {exc}") from None
    spans = [m.span() for m in regex.finditer(source)]
    if len(spans) != 1:
        raise ToolError(_count_message("the pattern", len(spans), source, spans, literal=False))
    start, end = spans[0]
    return Edit(source[:start] + content + source[end:], start, end, source[start:end])


def _count_message(
    what: str, count: int, source: str, spans: list[tuple[int, int]], literal: bool
) -> str:
    if count == 0:
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
    return f"{what} matches {count} times, at {_where(source, spans)}; {fix}"
