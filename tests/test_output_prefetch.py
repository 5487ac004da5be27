"""OutputPrefetch in process: a watched cell's stored outputs are fetched as the
document refers to them, each once, and handed out by get()."""

from __future__ import annotations

import asyncio

import pytest

from runtimed.client.output_prefetch import OutputPrefetch
from runtimed.documents.blob_refs import make_ref
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError


async def test_stored_parts_are_fetched_while_the_cell_runs() -> None:
    nb = NotebookDoc()
    asked: list[str] = []

    async def fetch(digest: str) -> bytes:
        asked.append(digest)
        if digest == "f" * 64:
            raise RuntimedError("no blob", "blob_not_found")
        return digest[:1].encode()

    prefetch = OutputPrefetch(lambda: nb, fetch)
    nb.doc.observe(lambda e: prefetch.on_update(e.update) if prefetch.watching else None)
    watched, other = nb.insert_cell(None, "print(...)"), nb.insert_cell(None, "x")
    prefetch.watch(watched)

    def spill(cell_id: str, *digests: str) -> None:
        with nb.doc.transaction():
            outputs = nb.ycell(cell_id)["outputs"]
            outputs.clear()
            refs = [make_ref(d, 1, "text/plain") for d in digests]
            outputs.append({"output_type": "stream", "name": "stdout", "text": [*refs, "tail"]})

    spill(watched, "a" * 64)
    spill(other, "c" * 64)  # not watched
    await asyncio.sleep(0.01)
    spill(watched, "a" * 64, "b" * 64, "f" * 64)
    await asyncio.sleep(0.01)
    assert asked == ["a" * 64, "b" * 64, "f" * 64]  # each once, in order, while it runs
    assert await prefetch.get("b" * 64) == b"b" and await prefetch.get("a" * 64) == b"a"
    with pytest.raises(RuntimedError, match="no blob"):
        await prefetch.get("f" * 64)  # a failed prefetch is asked again, and raises
    assert await prefetch.get("d" * 64) == b"d"  # never referred to: fetched now
    prefetch.unwatch(watched)
    assert not prefetch.watching
    spill(watched, "e" * 64)
    await asyncio.sleep(0.01)
    assert "e" * 64 not in asked


async def test_what_a_running_cell_no_longer_shows_is_dropped() -> None:
    """A plot redrawn every second while the session waits: only the current one is kept."""
    nb = NotebookDoc()
    fetched: list[str] = []

    async def fetch(digest: str) -> bytes:
        fetched.append(digest)
        return digest[:1].encode()

    prefetch = OutputPrefetch(lambda: nb, fetch)
    nb.doc.observe(lambda e: prefetch.on_update(e.update) if prefetch.watching else None)
    watched = nb.insert_cell(None, "redraw()")
    prefetch.watch(watched)
    for digest in ("a" * 64, "b" * 64, "c" * 64):
        with nb.doc.transaction():
            outputs = nb.ycell(watched)["outputs"]
            outputs.clear()  # clear_output(wait=True), then the new frame
            data = {"image/png": make_ref(digest, 1, "image/png")}
            outputs.append({"output_type": "display_data", "data": data, "metadata": {}})
        await asyncio.sleep(0.01)
    assert fetched == ["a" * 64, "b" * 64, "c" * 64]
    assert list(prefetch._fetches) == ["c" * 64]  # the earlier frames' bytes are not held
    assert await prefetch.get("c" * 64) == b"c"
