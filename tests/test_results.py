"""ExecutionResult and Output, in process: stream text stored in blobs is fetched with
the result and joined only when read."""

from __future__ import annotations

import dataclasses

from runtimed.client.results import ExecutionResult, Output
from runtimed.documents.blob_refs import make_ref
from runtimed.documents.notebook import CellData

PARTS = {"a" * 64: "é" * 1000 + "\n", "b" * 64: "second\n"}


def fetch(digest: str) -> bytes:
    return PARTS[digest].encode()


def stored(digest: str) -> dict[str, object]:
    return make_ref(digest, len(fetch(digest)), "text/plain")


def test_stored_stream_text_is_joined_when_read() -> None:
    outputs = [
        {
            "output_type": "stream",
            "name": "stdout",
            "text": [stored("a" * 64), stored("b" * 64), "tail"],
        },
        {"output_type": "stream", "name": "stderr", "text": stored("b" * 64)},
        {"output_type": "stream", "name": "stdout", "text": ["plain ", "list"]},
        {"output_type": "execute_result", "data": {"text/plain": "2"}, "execution_count": 1},
    ]
    cell = CellData("c", "code", "", 1, outputs)
    result = ExecutionResult.from_cell(
        cell, {"execution_id": "e", "status": "done", "success": True}, fetch
    )
    first, err, plain, shown = result.outputs
    assert "_text" in vars(first) and not isinstance(vars(first)["_text"], str)  # not yet
    assert first.text == PARTS["a" * 64] + "second\ntail"
    assert isinstance(vars(first)["_text"], str)  # joined once, kept
    assert err.text == "second\n" and plain.text == "plain list" and shown.text is None
    assert result.stdout == first.text + "plain list" and result.stderr == "second\n"
    assert result.stdout is result.stdout  # joined once
    assert dataclasses.replace(first, name="x").text == first.text
    assert first == Output.from_nbformat(outputs[0], fetch)
    assert "second" in repr(first)


def test_outputs_without_a_fetch_keep_their_references() -> None:
    ref = stored("b" * 64)
    output = Output.from_nbformat({"output_type": "stream", "name": "stdout", "text": "x\n"})
    assert output.text == "x\n" and Output("stream").text is None
    data = Output.from_nbformat({"output_type": "display_data", "data": {"text/html": ref}})
    assert data.data["text/html"] == ref
