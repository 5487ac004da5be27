"""How `runt run` shows a cell's outputs as they grow in the replica: streams by suffix,
everything else once, the richest form the terminal can take: images inline
(``console_images``), ``text/markdown`` and ``text/latex`` with rich's Markdown, then
``text/plain``; what is left is one line pointing at `runt export`."""

from __future__ import annotations

import base64
import sys
from typing import TYPE_CHECKING, Any

from runtimed.cli.console_images import IMAGE_TYPES, graphics_protocol, inline_image, placeholder
from runtimed.documents.blob_refs import is_ref

if TYPE_CHECKING:
    from rich.console import Console

    from runtimed.client.async_session import AsyncSession


class OutputPrinter:
    """Prints one cell's outputs as they grow. ``blob_url``: the daemon's blob server
    (``http://127.0.0.1:<port>``), for placeholders of images the terminal cannot show."""

    def __init__(
        self, console: Console, session: AsyncSession, blob_url: str | None = None
    ) -> None:
        self.console = console
        self.session = session
        self.blob_url = blob_url
        self.protocol = graphics_protocol()
        self._shown: list[int] = []  # per output: characters (streams) or 1 (shown)

    async def update(self, outputs: list[dict[str, Any]]) -> None:
        for index, output in enumerate(outputs):
            if index >= len(self._shown):
                self._shown.append(0)
            if output.get("output_type") == "stream":
                text = await self._text(output.get("text"))
                if len(text) > self._shown[index]:
                    stream = sys.stderr if output.get("name") == "stderr" else sys.stdout
                    stream.write(text[self._shown[index] :])
                    stream.flush()
                    self._shown[index] = len(text)
            elif not self._shown[index]:
                self._shown[index] = 1
                await self._show(output)

    async def _text(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if is_ref(value):
            return (await self.session.get_blob(value["blob"])).decode("utf-8", "replace")
        if isinstance(value, list):
            return "".join([await self._text(part) for part in value])
        return ""

    async def _show(self, output: dict[str, Any]) -> None:
        kind = output.get("output_type")
        if kind == "error":
            sys.stdout.write("\n".join(output.get("traceback") or []) + "\n")
            sys.stdout.flush()
            return
        data = output.get("data") or {}
        if kind == "execute_result":
            count = output.get("execution_count")
            self.console.print(f"[red]Out[{count}]:[/red] ", end="")
        await self._show_data(data)
        sys.stdout.flush()

    async def _show_data(self, data: dict[str, Any]) -> None:
        for media_type in IMAGE_TYPES:
            if media_type in data:
                await self._image(media_type, data[media_type])
                return
        for media_type in ("text/markdown", "text/latex"):
            if media_type in data:
                self._markdown(await self._text(data[media_type]), media_type)
                return
        text = data.get("text/plain")
        if text is not None:
            sys.stdout.write(await self._text(text) + "\n")
            return
        kinds = ", ".join(m for m in data if not m.startswith("application/vnd.jupyter"))
        self.console.print(f"[dim]<{kinds or 'display'} output: see runt export>[/dim]")

    def _markdown(self, text: str, media_type: str) -> None:
        from rich.markdown import Markdown

        if media_type == "text/latex":  # shown as its source, in a math block
            text = f"```latex\n{text.strip()}\n```"
        self.console.print(Markdown(text))

    async def _image(self, media_type: str, value: Any) -> None:
        ref = value if is_ref(value) else None
        raw: bytes | None = None
        if self.protocol is not None:
            raw = await self.session.get_blob(ref["blob"]) if ref else _decoded(value)
            shown = inline_image(raw, media_type, self.protocol) if raw else None
            if shown is not None:
                sys.stdout.write(shown)
                return
        url = f"{self.blob_url}/blob/{ref['blob']}" if ref and self.blob_url else None
        size = int(ref["size"]) if ref and "size" in ref else (len(raw) if raw else None)
        self.console.print(f"[dim]{placeholder(media_type, size, url)}[/dim]", soft_wrap=True)


def _decoded(value: Any) -> bytes | None:
    try:
        return base64.b64decode(value if isinstance(value, str) else "".join(value))
    except (ValueError, TypeError):
        return None
