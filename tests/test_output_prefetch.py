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
