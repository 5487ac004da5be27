"""Large kernel messages: decoded off the event loop with big values written straight to
blobs, and what the document ends up with is exactly what the kernel sent. Real signed
messages (jupyter_client's Session) and a real BlobStore; no daemon, no kernel."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_client.session import Session

from helpers import iopub_message
from runtimed.daemon.blobs import BlobStore
from runtimed.daemon.execution import large_outputs
from runtimed.daemon.execution.large_outputs import LargeMessageDecoder, SpilledText
from runtimed.daemon.execution.output_writer import OutputWriter
from runtimed.daemon.kernels.channels import verified_parts
from runtimed.documents.blob_refs import is_ref, resolve_output
from runtimed.documents.notebook import NotebookDoc

KEY = b"secret"


def wire(msg_type: str, content: dict[str, Any], ascii_json: bool = False) -> list[bytes]:
    """The frames a kernel sends: JSON with non-ASCII as UTF-8, like jupyter_client, or
    all ASCII with escapes (surrogate pairs for emoji), as other kernels may write it."""
    session = Session(key=KEY)
    if ascii_json:
        session.pack = lambda obj: json.dumps(obj, ensure_ascii=True, default=str).encode()
    return session.serialize(session.msg(msg_type, content))


def decode(
    store: BlobStore, msg_type: str, content: dict[str, Any], ascii_json: bool = False
) -> dict[str, Any]:
    parts = verified_parts(Session(key=KEY), wire(msg_type, content, ascii_json))
    return LargeMessageDecoder(store).decode(parts)


def spilled_text(store: BlobStore, text: Any) -> str:
    assert isinstance(text, SpilledText), type(text)
    return "".join(store.get(r["blob"]).decode() for r in text.refs) + text.tail


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny thresholds: every escape lands near a step boundary somewhere."""
    monkeypatch.setattr(large_outputs, "LARGE_VALUE", 64)
    monkeypatch.setattr(large_outputs, "STEP", 13)
    monkeypatch.setattr(large_outputs, "PART", 50)
    monkeypatch.setattr(large_outputs, "LIVE_TAIL", 10)


def test_a_large_print_is_stored_as_it_is_decoded(store: BlobStore) -> None:
    text = ("x" * 99 + "\n") * 30_000 + "tail"  # 3 MB and a line still being written
    msg = decode(store, "stream", {"name": "stdout", "text": text})
    spilled = msg["content"]["text"]
    assert msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout"
    assert spilled.tail == "tail" and spilled_text(store, spilled) == text


@pytest.mark.parametrize("line", ["x" * 99, "a \\n is not a newline", "C:\\new\\dir"])
def test_printed_lines_read_back_exactly(store: BlobStore, line: str) -> None:
    """Newlines as the only escapes take the quick path; an escaped backslash before an
    n must not be mistaken for one."""
    text = (line + "\n") * (3_000_000 // (len(line) + 1))  # over LARGE_VALUE
    assert (
        spilled_text(
            store, decode(store, "stream", {"name": "out", "text": text})["content"]["text"]
        )
        == text
    )


_TEXT = st.text(
    st.sampled_from(["a", "n", "é", "日", "😀", "\n", "\t", '"', "\\", "\x00", "\u2028"]),
    min_size=64,
    max_size=400,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_TEXT, ascii_json=st.booleans())
def test_any_text_reads_back_exactly(
    store: BlobStore, small_steps: None, text: str, ascii_json: bool
) -> None:
    """Escapes, multi-byte characters and escaped surrogate pairs, cut anywhere: the
    stored parts and the tail are the text."""
    msg = decode(store, "stream", {"name": "stdout", "text": text}, ascii_json)
    got = msg["content"]["text"]
    assert isinstance(got, SpilledText)
    assert spilled_text(store, got) == text
    assert all(r["size"] <= 50 + 13 * 4 for r in got.refs)  # parts of about PART


@pytest.mark.parametrize("control", ["\r", "\b", "\x1b[31m"])
def test_terminal_controls_take_the_ordinary_path(store: BlobStore, control: str) -> None:
    text = "progress" * 200_000 + control + "done\n"
    msg = decode(store, "stream", {"name": "stdout", "text": text})
    assert msg["content"]["text"] == text  # the terminal emulation needs it whole
    assert store.hashes() == [], "nothing half-written is left behind"


def test_large_mime_payloads_become_references(store: BlobStore) -> None:
    png = bytes(range(256)) * 8_000  # 2 MB of binary
    encoded = base64.b64encode(png).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    html = "<p>" + "é" * 1_000_000 + "</p>"
    content = {
        "data": {"image/png": wrapped, "text/html": html, "text/plain": "<img>"},
        "metadata": {"image/png": {"width": 10}},
    }
    msg = decode(store, "display_data", content)
    data = msg["content"]["data"]
    assert is_ref(data["image/png"]) and store.get(data["image/png"]["blob"]) == png
    assert is_ref(data["text/html"]) and store.get(data["text/html"]["blob"]).decode() == html
    assert data["text/plain"] == "<img>" and msg["content"]["metadata"] == content["metadata"]
    output = resolve_output({"output_type": "display_data", **msg["content"]}, store.get)
    assert output["data"]["image/png"] == base64.b64encode(png).decode()


def test_invalid_base64_stays_as_the_kernel_sent_it(store: BlobStore) -> None:
    bad = "not base64!" * 200_000
    msg = decode(store, "display_data", {"data": {"image/png": bad}, "metadata": {}})
    assert msg["content"]["data"]["image/png"] == bad
    assert store.hashes() == []


def test_other_large_messages_decode_as_usual(store: BlobStore) -> None:
    traceback = ["x" * 2_000_000]
    content = {"ename": "E", "evalue": "v", "traceback": traceback}
    assert decode(store, "error", content)["content"] == content


def test_a_forged_large_message_is_refused() -> None:
    frames = wire("stream", {"name": "stdout", "text": "x" * 2_000_000})
    with pytest.raises(ValueError, match="signature"):
        verified_parts(Session(key=b"other"), frames)


async def test_stored_stream_text_joins_the_stream_in_order(tmp_path: Path) -> None:
    """Text already in the stream, then a huge message, then more: the document's
    output reads back as everything in order."""
    store = BlobStore(tmp_path / "blobs")
    nb = NotebookDoc()
    writer = OutputWriter(nb, store, lambda: 1024)
    cell = nb.insert_cell(None, "print")
    writer.begin(cell)
    big = "y" * 3_000_000 + "\nlast line so f"
    writer.on_message(cell, iopub_message("stream", {"name": "stdout", "text": "first\nhal"}))
    writer.on_message(cell, decode(store, "stream", {"name": "stdout", "text": big}))
    writer.on_message(cell, iopub_message("stream", {"name": "stdout", "text": "ar\n"}))
    writer.finish(cell, 1, set_count=True)
    (output,) = nb.get_cell(cell).outputs
    assert resolve_output(output, store.get)["text"] == "first\nhal" + big + "ar\n"
    assert len(str(output)) < 2000
