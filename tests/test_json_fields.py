"""json_fields: a JSON object's top-level fields found in bounded steps, as msgspec finds them."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtimed.daemon.execution import json_fields
from runtimed.daemon.execution.json_fields import object_fields

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(), _values, max_size=6)


def _decoded(fields: dict[str, memoryview]) -> dict[str, Any]:
    return {key: msgspec.json.decode(value) for key, value in fields.items()}


@pytest.fixture(params=[1, 3, 1 << 20], ids=["step1", "step3", "step1M"])
def step(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Tiny steps put step boundaries inside every escape, string and bracket."""
    monkeypatch.setattr(json_fields, "STEP", request.param)
    return int(request.param)


@settings(max_examples=150, deadline=None)
@given(
    obj=_objects,
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
)
def test_fields_are_the_objects_own(obj: dict[str, Any], indent: int | None, ascii_only: bool):
    data = json.dumps(obj, indent=indent, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    for step in (1, 2, 5, 1 << 20):
        json_fields.STEP = step
        try:
            assert _decoded(object_fields(memoryview(data))) == msgspec.json.decode(data)
        finally:
            json_fields.STEP = 1 << 20


def test_strings_with_escapes_and_quotes_across_steps(step: int):
    text = 'a "quoted" \\ back\\slash \n\t \u00e9\U0001f600 \\"' * 5
    data = json.dumps({"name": "stdout", "text": text, "n": [1, {"x": "]}"}]}).encode()
    fields = object_fields(memoryview(data))
    assert list(fields) == ["name", "text", "n"]
    assert msgspec.json.decode(fields["text"]) == text
    assert msgspec.json.decode(fields["n"]) == [1, {"x": "]}"}]


@pytest.mark.parametrize("run", range(1, 7))
def test_backslash_runs_end_where_they_should_in_steps_without_a_quote(step: int, run: int):
    # Quote-free steps are skipped without the regex: one that ends mid-escape must not
    # let the escaped character (here a quote, after the step) close the string.
    text = "abc" + "\\" * run + '"' + "\\" * run + "tail"
    data = json.dumps({"text": text, "after": "x"}).encode()
    fields = object_fields(memoryview(data))
    assert msgspec.json.decode(fields["text"]) == text
    assert msgspec.json.decode(fields["after"]) == "x"


@pytest.mark.parametrize("run", [4095, 4096, 4097, 10_000, 10_001])
def test_long_backslash_runs_are_counted_across_chunks(run: int):
    # The run before a quote is counted 4 KiB at a time: odd escapes the quote, even not.
    text = "\\" * run + '"' + "\\" * run
    data = json.dumps({"text": text, "after": "x"}).encode()
    fields = object_fields(memoryview(data))
    assert msgspec.json.decode(fields["text"]) == text
    assert msgspec.json.decode(fields["after"]) == "x"


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"[1, 2]",
        b'"text"',
        b"{",
        b'{"a"',
        b'{"a" 1}',
        b'{"a": }',
        b'{"a": 1,}',
        b'{"a": 1 "b": 2}',
        b'{"a": "unterminated}',
        b'{"a": "lone backslash\\',
        b'{"a": [1, 2}',
        b'{"a": {"b": 1}',
        b'{"a": 1} trailing',
        b"{1: 2}",
    ],
)
def test_malformed_objects_raise_decode_error(bad: bytes, step: int):
    with pytest.raises(msgspec.DecodeError):
        fields = object_fields(memoryview(bad))
        _decoded(fields)  # a value that is not JSON fails when decoded, as the caller does


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80) | _objects.map(lambda o: json.dumps(o).encode()[:-1]))
def test_any_bytes_give_fields_or_decode_error(data: bytes):
    """Never another exception, never a hang; where msgspec reads an object, the same."""
    try:
        expected = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        expected = None
    try:
        got = _decoded(object_fields(memoryview(data)))
    except msgspec.DecodeError:
        got = None
    if isinstance(expected, dict):
        assert got == expected


def test_a_huge_value_never_holds_the_thread_switch_for_long():
    """The point of the module: another thread (the event loop) keeps running while a
    600 MB string's end is found."""
    data = memoryview(json.dumps({"name": "stdout", "text": "x" * 300_000_000}).encode())
    done = threading.Event()
    worst = 0.0

    def scan() -> None:
        object_fields(data)
        done.set()

    worker = threading.Thread(target=scan)
    worker.start()
    while not done.is_set():
        before = time.perf_counter()
        time.sleep(0.001)
        worst = max(worst, time.perf_counter() - before)
    worker.join()
    assert worst < 0.05
