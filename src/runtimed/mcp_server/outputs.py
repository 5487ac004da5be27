"""Cell outputs as an agent reads them: text it can act on, images as image content.

- Streams and ``text/plain`` are text, without ANSI escape codes; stderr is labelled.
- Errors are ``ename: evalue`` and the traceback, without ANSI codes.
- Rich outputs: images (PNG, JPEG, GIF, WebP) become MCP image content; the text shown is
  the most useful textual form (``text/llm+plain``, markdown, plain, LaTeX), else HTML
  rendered as text, else pretty JSON; anything else is named with its size.
- Long text is cut to its head and tail with a note saying how to read the rest
  (``get_cell(cell_id, output_index, offset)``), so one chatty cell cannot flood the
  agent's context.

Outputs come as the shared document holds them: payloads may be blob references, fetched
here only when shown.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from mcp.types import ContentBlock, ImageContent, TextContent

from runtimed.documents.blob_refs import decode_payload, is_ref

BlobFetch = Callable[[str], Awaitable[bytes]]

#: Characters of one output shown before it is cut (head and tail kept).
OUTPUT_CHARS = 8000
#: Characters of all outputs of one answer; later outputs are only named once it is spent.
ANSWER_CHARS = 40000
#: Raw bytes of one image returned as image content; larger ones are described instead.
IMAGE_BYTES = 2 * 2**20
#: Raw bytes of all images of one answer.
ANSWER_IMAGE_BYTES = 6 * 2**20

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
TEXT_TYPES = ("text/llm+plain", "text/markdown", "text/plain", "text/latex")

_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Text without terminal escape sequences (colours, cursor moves, titles)."""
    return _ANSI.sub("", text)


def size_label(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 2**20:
        return f"{n / 1024:.1f} KB"
    return f"{n / 2**20:.1f} MB"


@dataclass
class Budget:
    """How much one answer may show: per output, in total, and in image bytes."""

    per_output: int = OUTPUT_CHARS
    total: int = ANSWER_CHARS
    image_bytes: int = ANSWER_IMAGE_BYTES
    images: bool = True
    used: int = 0
    used_image_bytes: int = 0

    def allowance(self) -> int:
        return max(0, min(self.per_output, self.total - self.used))


def clip(text: str, limit: int, hint: Callable[[int], str]) -> str:
    """``text`` cut to about ``limit`` characters: its head and its tail, with a note of
    what was left out and ``hint(offset)`` (how to read it from there) in between."""
    if len(text) <= limit:
        return text
    head_len = max(0, limit * 2 // 3)
    tail_len = max(0, limit - head_len)
    newline = text.rfind("\n", head_len // 2, head_len)
    if newline != -1:
        head_len = newline + 1  # end the head on a line boundary when one is near
    tail_start = len(text) - tail_len
    newline = text.find("\n", tail_start, tail_start + tail_len // 2)
    if newline != -1:
        tail_start = newline + 1
    omitted = text[head_len:tail_start]
    lines = omitted.count("\n")
    note = (
        f"\n… [{len(omitted):,} characters ({lines:,} lines) omitted; read them with "
        f"{hint(head_len)}] …\n"
    )
    return text[:head_len] + note + text[tail_start:]


class _HtmlText(HTMLParser):
    """HTML as readable text: block elements on their own lines, table cells tab-separated,
    scripts and styles dropped."""

    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "tr",
            "li",
            "ul",
            "ol",
            "table",
            "thead",
            "tbody",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "pre",
            "section",
            "hr",
        ]
    )
    _SKIP = frozenset(("script", "style", "head"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self._newline()
        elif tag in ("td", "th") and self.parts and self.parts[-1] != "\n":
            self.parts.append("\t")  # between cells of a row, not before the first

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self._newline()

    def _newline(self) -> None:
        if self.parts and self.parts[-1] != "\n":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (line.strip(" ") for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line.strip()).strip()


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


async def _payload(mime: str, value: Any, fetch: BlobFetch) -> Any:
    """``data[mime]`` as nbformat has it (a reference is fetched)."""
    if is_ref(value):
        return decode_payload(mime, await fetch(value["blob"]))
    return value


async def _stream_text(value: Any, fetch: BlobFetch) -> str:
    if is_ref(value):
        return (await fetch(value["blob"])).decode("utf-8", errors="replace")
    if isinstance(value, list):
        parts = []
        for part in value:
            if is_ref(part):
                parts.append((await fetch(part["blob"])).decode("utf-8", errors="replace"))
            else:
                parts.append(str(part))
        return "".join(parts)
    return str(value or "")


def _payload_size(value: Any) -> int:
    if is_ref(value):
        return int(value.get("size") or 0)
    text = _joined(value)
    return len(text)


async def output_text(output: dict[str, Any], fetch: BlobFetch) -> str:
    """The whole text an agent is shown for one output (no cutting, no images)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = strip_ansi(await _stream_text(output.get("text"), fetch))
        return f"[stderr]\n{text}" if output.get("name") == "stderr" else text
    if kind == "error":
        head = f"{output.get('ename', '')}: {output.get('evalue', '')}"
        traceback = strip_ansi("\n".join(str(t) for t in output.get("traceback") or []))
        text = f"{head}\n{traceback}" if traceback else head
        missing = _MISSING_MODULE.match(str(output.get("evalue", "")))
        if output.get("ename") == "ModuleNotFoundError" and missing:
            text += (
                f"\n(hint: add the package that provides {missing.group(1)!r} with "
                "add_dependency, then call sync_environment)"
            )
        return text
    if kind in ("execute_result", "display_data"):
        return await _rich_text(output, fetch)
    return f"[{kind} output]"


async def _rich_text(output: dict[str, Any], fetch: BlobFetch) -> str:
    data: dict[str, Any] = dict(output.get("data") or {})
    parts: list[str] = []
    for mime in IMAGE_TYPES:
        if mime in data:
            parts.append(f"[{mime} image, {size_label(_image_size(data[mime]))}]")
    if "image/svg+xml" in data:
        parts.append(f"[SVG image, {size_label(_payload_size(data['image/svg+xml']))}]")
    text = await _best_text(data, fetch)
    if text is not None:
        parts.append(text)
    shown = {*IMAGE_TYPES, "image/svg+xml", *TEXT_TYPES, "text/html", "application/json"}
    others = [m for m in data if m not in shown and not m.endswith("+json")]
    widget = data.get("application/vnd.jupyter.widget-view+json")
    if isinstance(widget, dict) and widget.get("model_id"):
        parts.append(f"[widget, model_id {widget['model_id']}]")
    if others:
        parts.append("[also: " + ", ".join(others) + "]")
    if not parts:
        parts.append("[" + ", ".join(data) + " output]" if data else "[empty output]")
    text = "\n".join(parts)
    count = output.get("execution_count")
    if output.get("output_type") == "execute_result" and count is not None:
        return f"Out[{count}]: {text}"
    return text


async def _best_text(data: dict[str, Any], fetch: BlobFetch) -> str | None:
    for mime in TEXT_TYPES:
        if mime in data:
            text = _joined(await _payload(mime, data[mime], fetch))
            # `<IPython.core.display.JSON object>` says nothing next to the JSON itself.
            if mime == "text/plain" and len(data) > 1 and _is_default_repr(text):
                continue
            return strip_ansi(text)
    if "text/html" in data:
        html = _joined(await _payload("text/html", data["text/html"], fetch))
        return "[HTML rendered as text]\n" + html_to_text(html)
    for mime in data:
        if mime == "application/json" or (mime.endswith("+json") and "widget" not in mime):
            value = await _payload(mime, data[mime], fetch)
            dumped = json.dumps(value, ensure_ascii=False, default=str)
            if len(dumped) > 120:
                dumped = json.dumps(value, indent=1, ensure_ascii=False, default=str)
            return f"[{mime}]\n{dumped}"
    return None


def _is_default_repr(text: str) -> bool:
    return text.startswith("<") and text.endswith(">") and " object" in text


def _image_size(value: Any) -> int:
    if is_ref(value):
        return int(value.get("size") or 0)
    return len("".join(_joined(value).split())) * 3 // 4


async def _image(mime: str, value: Any, fetch: BlobFetch) -> bytes | None:
    if is_ref(value):
        return await fetch(value["blob"])
    try:
        return base64.b64decode("".join(_joined(value).split()), validate=True)
    except ValueError:
        return None


@dataclass
class _Blocks:
    """Content blocks under construction: consecutive text merges into one block."""

    items: list[ContentBlock] = field(default_factory=list)
    _text: list[str] = field(default_factory=list)

    def text(self, text: str) -> None:
        self._text.append(text)

    def image(self, block: ImageContent) -> None:
        self.flush()
        self.items.append(block)

    def flush(self) -> None:
        if self._text:
            self.items.append(TextContent(type="text", text="\n".join(self._text)))
            self._text = []


async def render_outputs(
    outputs: list[dict[str, Any]],
    fetch: BlobFetch,
    cell_id: str,
    budget: Budget,
) -> list[ContentBlock]:
    """Content blocks for a cell's outputs within ``budget``."""
    blocks = _Blocks()
    for index, output in enumerate(outputs):
        if budget.total - budget.used <= 0:
            left = len(outputs) - index
            blocks.text(
                f"[{left} more output(s) not shown: this answer is full; read them with "
                f'get_cell(cell_id="{cell_id}", output_index={index})]'
            )
            break
        if budget.images and output.get("output_type") in ("execute_result", "display_data"):
            await _add_images(blocks, output, fetch, budget)
        text = await output_text(output, fetch)
        shown = clip(text, budget.allowance(), more_hint(cell_id, index))
        budget.used += len(shown)
        blocks.text(shown)
    blocks.flush()
    return blocks.items


async def _add_images(
    blocks: _Blocks, output: dict[str, Any], fetch: BlobFetch, budget: Budget
) -> None:
    data: dict[str, Any] = dict(output.get("data") or {})
    for mime in IMAGE_TYPES:
        if mime not in data:
            continue
        size = _image_size(data[mime])
        if size > IMAGE_BYTES or budget.used_image_bytes + size > budget.image_bytes:
            blocks.text(f"[{mime} image of {size_label(size)} not included: too large]")
            return
        raw = await _image(mime, data[mime], fetch)
        if raw is None:
            blocks.text(f"[{mime} image not included: its data is not valid base64]")
            return
        budget.used_image_bytes += len(raw)
        blocks.image(
            ImageContent(type="image", data=base64.b64encode(raw).decode("ascii"), mime_type=mime)
        )
        return  # one image per output: the first of its formats


def more_hint(cell_id: str, index: int) -> Callable[[int], str]:
    """How to read one output from an offset on."""
    return lambda offset: f'get_cell(cell_id="{cell_id}", output_index={index}, offset={offset})'


def page(text: str, offset: int, limit: int, hint: Callable[[int], str]) -> str:
    """Characters ``offset`` to ``offset + limit`` of ``text``, with where the rest is."""
    total = len(text)
    if offset >= total and total:
        return f"[offset {offset} is past the end: this output has {total:,} characters]"
    end = min(total, offset + limit)
    note = f"[characters {offset:,}-{end:,} of {total:,}"
    note += f"; next: {hint(end)}]" if end < total else "]"
    return f"{text[offset:end]}\n{note}"
