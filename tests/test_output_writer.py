"""OutputWriter in-process: IOPub messages into a notebook document, coalesced, with
large and binary payloads in a real BlobStore (no daemon, no kernel)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from helpers import iopub_message as msg
from runtimed.daemon.blobs import BlobStore
from runtimed.daemon.execution.output_writer import SPILL_CHUNK, OutputWriter
from runtimed.documents.notebook import NotebookDoc


def writer(tmp_path: Path, threshold: int = 1024) -> tuple[NotebookDoc, OutputWriter, BlobStore]:
    nb = NotebookDoc()
    blobs = BlobStore(tmp_path / "blobs", 2**30)
    return nb, OutputWriter(nb, blobs, lambda: threshold), blobs


def updates_of(nb: NotebookDoc) -> list[bytes]:
    seen: list[bytes] = []
    nb.doc.observe(lambda event: seen.append(event.update))
    return seen


async def test_stream_chunks_merge_and_reach_the_document_in_one_write(tmp_path: Path) -> None:
    nb, out, _ = writer(tmp_path)
    cell = nb.insert_cell(None, "print")
    out.begin(cell)
    seen = updates_of(nb)
    for i in range(50):
        out.on_message(cell, msg("stream", {"name": "stdout", "text": f"line {i}\n"}))
    out.on_message(cell, msg("stream", {"name": "stderr", "text": "warn\n"}))
    assert nb.get_cell(cell).outputs == []  # coalesced: nothing written yet
    out.finish(cell, 7, set_count=True)
    outputs = nb.get_cell(cell).outputs
    assert [o["name"] for o in outputs] == ["stdout", "stderr"]
    assert outputs[0]["text"] == "".join(f"line {i}\n" for i in range(50))
    assert nb.get_cell(cell).execution_count == 7
    assert len(seen) == 1  # 51 messages, one document transaction


async def test_a_quiet_cells_result_is_written_at_once_with_its_count(tmp_path: Path) -> None:
    """The first output after a quiet spell reaches the document at the end of the loop
    turn (a quick cell's result is there before the kernel goes idle), with the count
    its execute_input gave; outputs right behind it are batched."""
    nb, out, _ = writer(tmp_path)
    cell = nb.insert_cell(None, "1+1")
    out.begin(cell)
    seen = updates_of(nb)
    out.on_message(cell, msg("execute_input", {"code": "1+1", "execution_count": 4}))
    out.on_message(cell, msg("execute_result", {"data": {"text/plain": "2"}, "execution_count": 4}))
    await asyncio.sleep(0)
    written = nb.get_cell(cell)
    assert written.execution_count == 4 and written.outputs[0]["data"] == {"text/plain": "2"}
    out.on_message(cell, msg("stream", {"name": "stdout", "text": "later\n"}))
    await asyncio.sleep(0)
    assert len(nb.get_cell(cell).outputs) == 1  # within FLUSH_DELAY_SECS: waits
    out.finish(cell, 4, set_count=True)
    assert len(nb.get_cell(cell).outputs) == 2 and len(seen) == 2


async def test_begin_clears_the_previous_run(tmp_path: Path) -> None:
    nb, out, _ = writer(tmp_path)
    cell = nb.insert_cell(
        None,
        "x",
        outputs=[{"output_type": "stream", "name": "stdout", "text": "old"}],
        execution_count=3,
    )
    out.begin(cell)
    assert nb.get_cell(cell).outputs == [] and nb.get_cell(cell).execution_count is None


async def test_big_and_binary_payloads_become_blob_references(tmp_path: Path) -> None:
    nb, out, blobs = writer(tmp_path)
    cell = nb.insert_cell(None, "show")
    out.begin(cell)
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    html = "<p>" + "y" * 5000 + "</p>"
    data = {"image/png": base64.b64encode(png).decode(), "text/html": html, "text/plain": "img"}
    out.on_message(cell, msg("display_data", {"data": data, "metadata": {}}))
    out.finish(cell, 1, set_count=True)
    (output,) = nb.get_cell(cell).outputs
    png_ref, html_ref = output["data"]["image/png"], output["data"]["text/html"]
    assert output["data"]["text/plain"] == "img"  # small text stays inline
    assert blobs.get(png_ref["blob"]) == png and png_ref["media_type"] == "image/png"
    assert blobs.get(html_ref["blob"]).decode() == html
    assert len(json.dumps(output)) < 1000


async def test_a_long_stream_keeps_only_a_live_tail_in_the_document(tmp_path: Path) -> None:
    nb, out, blobs = writer(tmp_path)
    cell = nb.insert_cell(None, "flood")
    out.begin(cell)
    line = "z" * 1023 + "\n"
    total = 3 * SPILL_CHUNK // len(line) + 5
    for _ in range(total):
        out.on_message(cell, msg("stream", {"name": "stdout", "text": line}))
    out.finish(cell, 1, set_count=True)
    (output,) = nb.get_cell(cell).outputs
    parts = output["text"]
    assert isinstance(parts, list) and all(isinstance(p, dict) for p in parts)
    text = "".join(blobs.get(p["blob"]).decode() for p in parts)
    assert text == line * total
    assert len(json.dumps(output)) < 2000


async def test_clear_outputs_and_clear_output_wait(tmp_path: Path) -> None:
    nb, out, _ = writer(tmp_path)
    cell = nb.insert_cell(None, "progress")
    out.begin(cell)
    out.on_message(cell, msg("stream", {"name": "stdout", "text": "10%\n"}))
    out.on_message(cell, msg("clear_output", {"wait": True}))
    out.on_message(cell, msg("stream", {"name": "stdout", "text": "90%\n"}))
    out.finish(cell, 1, set_count=True)
    assert [o["text"] for o in nb.get_cell(cell).outputs] == ["90%\n"]
    out.clear(cell)
    assert nb.get_cell(cell).outputs == []


async def test_output_for_a_deleted_cell_is_dropped(tmp_path: Path) -> None:
    nb, out, _ = writer(tmp_path)
    cell, other = nb.insert_cell(None, "a"), nb.insert_cell(None, "b")
    out.begin(cell)
    out.on_message(cell, msg("stream", {"name": "stdout", "text": "late\n"}))
    nb.delete_cell(cell)
    out.finish(cell, 1, set_count=True)  # no error, and nothing lands elsewhere
    assert [c.id for c in nb.get_cells()] == [other] and nb.get_cell(other).outputs == []
