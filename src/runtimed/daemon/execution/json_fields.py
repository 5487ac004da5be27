"""The top-level fields of a JSON object as views of its bytes, found a megabyte at a time.

``msgspec.json.Decoder(dict[str, msgspec.Raw])`` finds the same fields, but it scans a
600 MB string value in one call that holds the GIL for 0.3 s, and the event loop, which
shares the daemon's process with the worker thread doing it, stalls as long. Here each
step scans at most STEP bytes (compiled regexes over the memoryview; a string's end is
found with ``bytes`` search for its quotes), so the thread lets the loop run in
between. Values are returned unparsed and unvalidated: the caller decodes each small one
with msgspec, which validates it.
"""

from __future__ import annotations

import re

import msgspec

#: Bytes scanned per step (about a millisecond).
STEP = 1 << 20
#: A key longer than this is not a kernel message's: the caller takes the ordinary path.
MAX_KEY = 4096

_WHITESPACE = re.compile(rb"[ \t\n\r]*+")
# Inside an array or object, everything up to the next quote or bracket.
_CONTAINER_BODY = re.compile(rb'[^"{}\[\]]*+')
_SCALAR = re.compile(rb"[^,}\]\s]*+")
_QUOTE, _OPEN_OBJECT, _CLOSE_OBJECT = ord('"'), ord("{"), ord("}")
_OPENERS, _CLOSERS = frozenset(b"{["), frozenset(b"}]")
_COLON, _COMMA = ord(":"), ord(",")
_json = msgspec.json.Decoder()


def object_fields(data: memoryview) -> dict[str, memoryview]:
    """``{key: raw value}`` of the JSON object in ``data``. Raises msgspec.DecodeError if
    ``data`` is not one object (its values' insides are checked only by decoding them)."""
    fields: dict[str, memoryview] = {}
    pos = _skip_space(data, 0)
    _expect(data, pos, _OPEN_OBJECT)
    pos = _skip_space(data, pos + 1)
    if _at(data, pos) == _CLOSE_OBJECT:
        return _finish(data, pos + 1, fields)
    while True:
        key_end = string_end(data, pos)
        if key_end - pos > MAX_KEY:
            raise msgspec.DecodeError("a JSON object key too long to be a kernel message's")
        key = _json.decode(data[pos:key_end])
        pos = _skip_space(data, key_end)
        _expect(data, pos, _COLON)
        pos = _skip_space(data, pos + 1)
        end = value_end(data, pos)
        fields[key] = data[pos:end]
        pos = _skip_space(data, end)
        if _at(data, pos) == _CLOSE_OBJECT:
            return _finish(data, pos + 1, fields)
        _expect(data, pos, _COMMA)
        pos = _skip_space(data, pos + 1)


def value_end(data: memoryview, pos: int) -> int:
    """Where the JSON value starting at ``pos`` ends."""
    first = _at(data, pos)
    if first == _QUOTE:
        return string_end(data, pos)
    if first in _OPENERS:
        return _container_end(data, pos)
    end = pos
    while True:
        window = min(end + STEP, len(data))
        match = _SCALAR.match(data, end, window)
        assert match is not None  # the pattern matches the empty string
        if match.end() < window or window == len(data):
            break
        end = match.end()
    if match.end() == pos:
        raise msgspec.DecodeError(f"no JSON value at byte {pos}")
    return match.end()


def string_end(data: memoryview, pos: int) -> int:
    """Just past the closing quote of the JSON string that opens at ``pos``."""
    _expect(data, pos, _QUOTE)
    start = pos + 1
    while start < len(data):
        stop = min(start + STEP, len(data))
        window = bytes(data[start:stop])
        quote = window.find(b'"')  # memchr: the text between quotes is skipped at once
        while quote >= 0:
            # A quote ends the string unless an odd run of backslashes escapes it.
            end = start + quote
            if _backslashes_before(data, end, pos + 1) % 2 == 0:
                return end + 1
            quote = window.find(b'"', quote + 1)
        start = stop
    raise msgspec.DecodeError("an unterminated JSON string")


def _backslashes_before(data: memoryview, end: int, floor: int) -> int:
    """The length of the run of backslashes just before ``end`` (none before ``floor``),
    counted 4 KiB at a time in C: a string of 100 million backslashes is one run."""
    count = 0
    while end > floor:
        chunk = bytes(data[max(floor, end - 4096) : end])
        run = len(chunk) - len(chunk.rstrip(b"\\"))
        count += run
        if run < len(chunk):
            break
        end -= run
    return count


def _container_end(data: memoryview, pos: int) -> int:
    depth = 0
    while True:
        byte = _at(data, pos)
        if byte == _QUOTE:
            pos = string_end(data, pos)
            continue
        if byte in _OPENERS:
            depth += 1
        elif byte in _CLOSERS:
            depth -= 1
            if depth == 0:
                return pos + 1
        elif byte < 0:
            raise msgspec.DecodeError("an unterminated JSON array or object")
        match = _CONTAINER_BODY.match(data, pos + 1, min(pos + 1 + STEP, len(data)))
        assert match is not None
        pos = match.end()


def _skip_space(data: memoryview, pos: int) -> int:
    while True:
        match = _WHITESPACE.match(data, pos, min(pos + STEP, len(data)))
        assert match is not None
        if match.end() - pos < STEP:
            return match.end()
        pos = match.end()


def _at(data: memoryview, pos: int) -> int:
    """The byte at ``pos``, or -1 past the end."""
    return data[pos] if pos < len(data) else -1


def _expect(data: memoryview, pos: int, byte: int) -> None:
    if _at(data, pos) != byte:
        raise msgspec.DecodeError(f"expected {chr(byte)!r} at byte {pos} of a JSON object")


def _finish(data: memoryview, pos: int, fields: dict[str, memoryview]) -> dict[str, memoryview]:
    if _skip_space(data, pos) != len(data):
        raise msgspec.DecodeError(f"trailing characters after a JSON object at byte {pos}")
    return fields
