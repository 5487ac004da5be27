"""IOPub -> nbformat outputs: unit tests on realistic messages, then against a real kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import iopub_message
from runtimed.daemon.kernels.outputs import OutputChange, OutputStore
from runtimed.daemon.kernels.terminal import _TOKEN, TerminalBuffer
from test_kernels import kernel_env_path, make_session  # noqa: F401 - shared helpers

msg = iopub_message


def stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return msg("stream", {"name": name, "text": text})


def display(
    data: dict[str, Any], display_id: str | None = None, kind: str = "display_data", **extra: Any
) -> dict[str, Any]:
    content: dict[str, Any] = {"data": data, "metadata": {}, **extra}
    if display_id is not None:
        content["transient"] = {"display_id": display_id}
    return msg(kind, content)


def validate(outputs: list[dict[str, Any]]) -> None:
    """Every output must be a valid nbformat v4 output."""
    cell = nbformat.v4.new_code_cell(source="", outputs=outputs)
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.validate(nb)


def render(*chunks: str) -> str:
    buffer = TerminalBuffer()
    for chunk in chunks:
        buffer.feed(chunk)
    return buffer.text


# -- terminal emulation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (["hello\n", "world\n"], "hello\nworld\n"),
        (["10%\r", "20%\r", "30%\n", "done\n"], "30%\ndone\n"),
        (["a\rb"], "b"),
        (["line1\nabc\rxy"], "line1\nxy"),
        (["abc\r\n"], "abc\n"),
        (["abc\r", "\n"], "abc\n"),
        (["abc\b\bX"], "aX"),
        (["ab\n\b\bc"], "ab\nc"),
        (["\x1b[31mred\x1b[0m\n"], "\x1b[31mred\x1b[0m\n"),
        (["\x1b[32mok\x1b[0m\b"], "\x1b[32mo\x1b[0m"),
        (["\x1b[1m 50%\x1b[0m\r", "\x1b[1m100%\x1b[0m\n"], "\x1b[1m100%\x1b[0m\n"),
        (["x" * 3, "\b", "y"], "xxy"),
        ([""], ""),
    ],
)
def test_terminal(chunks: list[str], expected: str) -> None:
    assert render(*chunks) == expected


# -- streams ------------------------------------------------------------------------------


def test_stream_chunks_merge_and_streams_stay_apart() -> None:
    store = OutputStore()
    changes: list[OutputChange] = []
    for m in [stream("a\n"), stream("b\n"), stream("oops\n", "stderr"), stream("c\n")]:
        changes += store.apply("c1", m)
    assert store.outputs("c1") == [
        {"output_type": "stream", "name": "stdout", "text": "a\nb\n"},
        {"output_type": "stream", "name": "stderr", "text": "oops\n"},
        {"output_type": "stream", "name": "stdout", "text": "c\n"},
    ]
    assert [(c.kind, c.index) for c in changes] == [
        ("append", 0),
        ("replace", 0),
        ("append", 1),
        ("append", 2),
    ]
    validate(store.outputs("c1"))


def test_progress_bar_across_chunks() -> None:
    store = OutputStore()
    for i in range(0, 101, 10):
        store.apply("c1", stream(f"\r[{'#' * (i // 10):<10}] {i}%"))
    store.apply("c1", stream("\n"))
    assert store.outputs("c1")[0]["text"] == "[##########] 100%\n"


# -- displays, results, errors ----------------------------------------------------------


def test_display_execute_result_error_in_order() -> None:
    store = OutputStore()
    store.apply("c1", msg("execute_input", {"code": "x", "execution_count": 3}))
    store.apply("c1", stream("hi\n"))
    store.apply("c1", display({"text/plain": "<Figure>", "image/png": "iVBOR"}))
    store.apply("c1", display({"text/plain": "2"}, kind="execute_result", execution_count=3))
    tb = ["\x1b[0;31mZeroDivisionError\x1b[0m", "division by zero"]
    store.apply(
        "c1",
        msg("error", {"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": tb}),
    )
    outputs = store.outputs("c1")
    assert [o["output_type"] for o in outputs] == [
        "stream",
        "display_data",
        "execute_result",
        "error",
    ]
    assert outputs[1]["data"]["image/png"] == "iVBOR"
    assert outputs[2]["execution_count"] == 3
    assert outputs[3] == {
        "output_type": "error",
        "ename": "ZeroDivisionError",
        "evalue": "division by zero",
        "traceback": tb,
    }
    assert store.cell("c1").execution_count == 3
    validate(outputs)


def test_update_display_data_across_cells() -> None:
    store = OutputStore()
    store.apply("c1", display({"text/plain": "v1"}, display_id="d"))
    store.apply("c2", stream("x\n"))
    store.apply("c2", display({"text/plain": "v1"}, display_id="d"))
    store.apply("c2", display({"text/plain": "other"}, display_id="e"))
    changes = store.apply("c3", display({"text/plain": "v2"}, "d", kind="update_display_data"))
    assert changes == [OutputChange("c1", "replace", 0), OutputChange("c2", "replace", 1)]
    assert store.outputs("c1")[0]["data"] == {"text/plain": "v2"}
    assert store.outputs("c2")[1]["data"] == {"text/plain": "v2"}
    assert store.outputs("c2")[2]["data"] == {"text/plain": "other"}
    assert store.outputs("c3") == []  # an update never adds an output
    assert [(d.cell_id, d.index) for d in store.find_display("d")] == [("c1", 0), ("c2", 1)]
    # "transient" never leaks into nbformat
    assert "transient" not in store.outputs("c1")[0]
    validate(store.outputs("c2"))


def test_update_of_cleared_display_is_dropped() -> None:
    store = OutputStore()
    store.apply("c1", display({"text/plain": "v1"}, display_id="d"))
    store.begin("c1")
    assert store.apply("c1", display({"text/plain": "v2"}, "d", kind="update_display_data")) == []
    assert store.find_display("d") == []
    assert (
        store.apply("c1", display({"text/plain": "v2"}, "nope", kind="update_display_data")) == []
    )


# -- clear_output ---------------------------------------------------------------------------


def test_clear_output_immediate() -> None:
    store = OutputStore()
    store.apply("c1", stream("old\n"))
    assert store.apply("c1", msg("clear_output", {"wait": False})) == [OutputChange("c1", "clear")]
    assert store.outputs("c1") == []
    store.apply("c1", stream("new\n"))
    assert store.outputs("c1") == [{"output_type": "stream", "name": "stdout", "text": "new\n"}]


def test_clear_output_wait_clears_on_next_output() -> None:
    store = OutputStore()
    store.apply("c1", display({"text/plain": "frame 1"}))
    assert store.apply("c1", msg("clear_output", {"wait": True})) == []
    assert len(store.outputs("c1")) == 1  # still visible until the next output
    changes = store.apply("c1", display({"text/plain": "frame 2"}))
    assert changes == [OutputChange("c1", "clear"), OutputChange("c1", "append", 0)]
    assert store.outputs("c1")[0]["data"] == {"text/plain": "frame 2"}
    # the pending clear is used up
    store.apply("c1", stream("x"))
    assert len(store.outputs("c1")) == 2


def test_clear_output_wait_then_stream_does_not_merge_into_cleared() -> None:
    store = OutputStore()
    store.apply("c1", stream("1/3"))
    store.apply("c1", msg("clear_output", {"wait": True}))
    store.apply("c1", stream("2/3"))
    assert store.outputs("c1") == [{"output_type": "stream", "name": "stdout", "text": "2/3"}]


def test_status_and_unknown_messages_ignored() -> None:
    store = OutputStore()
    assert store.apply("c1", msg("status", {"execution_state": "busy"})) == []
    assert store.apply("c1", msg("comm_msg", {"comm_id": "x", "data": {}})) == []
    assert store.outputs("c1") == []


# -- against a real kernel -------------------------------------------------------------------


async def run_in(session: Any, code: str, store: OutputStore, cell_id: str) -> Any:
    store.begin(cell_id)
    return await session.execute(code, lambda m: store.apply(cell_id, m))


@pytest.mark.daemon
async def test_real_kernel_outputs(tmp_path: Path, kernel_env_path: Path) -> None:  # noqa: F811
    store = OutputStore()
    async with make_session(tmp_path, kernel_env_path) as session:
        await run_in(
            session,
            (
                "import sys\n"
                "for i in range(5):\n"
                "    print(f'\\r{i * 25}%', end='', flush=True)\n"
                "print(flush=True)\n"
                "print('warn', file=sys.stderr, flush=True)\n"
                "print('\\x1b[31mred\\x1b[0m', flush=True)\n"
                "'done'"
            ),
            store,
            "progress",
        )
        outputs = store.outputs("progress")
        assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "100%\n"}
        assert outputs[1] == {"output_type": "stream", "name": "stderr", "text": "warn\n"}
        assert outputs[2]["text"] == "\x1b[31mred\x1b[0m\n"
        assert outputs[3]["output_type"] == "execute_result"
        assert outputs[3]["data"]["text/plain"] == "'done'"
        assert outputs[3]["execution_count"] == store.cell("progress").execution_count == 1

        await run_in(session, "h = display('v1', display_id='d1')", store, "disp")
        await run_in(session, "h.update('v2')", store, "upd")
        assert store.outputs("disp")[0]["data"]["text/plain"] == "'v2'"
        assert store.outputs("upd") == []

        await run_in(
            session,
            (
                "from IPython.display import clear_output\n"
                "for i in range(3):\n"
                "    clear_output(wait=True)\n"
                "    print(f'frame {i}', flush=True)\n"
            ),
            store,
            "frames",
        )
        assert store.outputs("frames") == [
            {"output_type": "stream", "name": "stdout", "text": "frame 2\n"}
        ]

        await run_in(session, "1/0", store, "err")
        (err,) = store.outputs("err")
        assert err["output_type"] == "error" and err["ename"] == "ZeroDivisionError"
        assert any("ZeroDivisionError" in line for line in err["traceback"])
        for cell_id in ("progress", "disp", "frames", "err"):
            validate(store.outputs(cell_id))


@given(st.lists(st.lists(st.sampled_from(["ab", "c", "\n", "\r", "\r\n", "\b", "\x1b[31m"]))))
def test_plain_text_fast_path_renders_like_the_tokenizer(chunks: list[list[str]]) -> None:
    fast, slow = TerminalBuffer(), TerminalBuffer()
    for parts in chunks:
        chunk = "".join(parts)
        fast.feed(chunk)
        slow._cache = None
        for token in _TOKEN.findall(chunk):
            slow._feed_token(token)
        assert fast.text == slow.text
        assert fast.completed_chars == slow.completed_chars
