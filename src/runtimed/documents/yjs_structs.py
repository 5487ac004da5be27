"""Reading the structure of a Yjs v1 update without applying it.

pycrdt (yrs) decodes nested values recursively: one update of a few tens of KB can hold
a value nested 50,000 deep and overflow the daemon's stack. Before an update reaches
pycrdt, ``scan_update`` reads every struct the way lib0/Yjs write them and reports, per
struct, what it hangs from (a root, a parent item, or a neighbour whose parent it shares)
and how deep its own content nests. The reader is iterative: no input makes it recurse.

Format: https://github.com/yjs/yjs/blob/main/src/utils/encoding.js (``writeStructs``),
the content encodings in ``src/structs/Content*.js``, lib0's ``writeAny``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Where a struct hangs: a root type, a parent item (by id), or a neighbour (its origin).
ROOT, PARENT, ORIGIN, NOWHERE = 0, 1, 2, 3

_TYPE_CONTENT = 7
_XML_NAMED_TYPES = (3, 5)  # XmlElement and XmlHook carry a name
_KNOWN_TYPE_REFS = frozenset((0, 1, 2, 3, 4, 5, 6, 15))


class UpdateFormatError(ValueError):
    """The bytes are not a Yjs v1 update."""


@dataclass(slots=True)
class StructRun:
    """The structs of one client in one update, in clock order (parallel lists)."""

    client: int
    starts: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    #: ROOT, PARENT (``refs`` holds the parent's id), ORIGIN (a neighbour's id) or NOWHERE.
    hangs: list[int] = field(default_factory=list)
    refs: list[tuple[int, int] | None] = field(default_factory=list)
    #: How deep the struct's content nests: 1 for a shared type, N for a value nested N.
    depths: list[int] = field(default_factory=list)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise UpdateFormatError("update ends early")
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def uint(self) -> int:
        pos = self.pos
        if pos < len(self.buf) and self.buf[pos] < 0x80:  # most are one byte
            self.pos = pos + 1
            return self.buf[pos]
        return self._long_uint()

    def _long_uint(self) -> int:
        buf, pos, shift, value = self.buf, self.pos, 0, 0
        end = len(buf)
        while True:
            if pos >= end:
                raise UpdateFormatError("update ends early")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return value
            shift += 7
            if shift > 63:
                raise UpdateFormatError("integer longer than 64 bits")

    def skip(self, count: int) -> None:
        if self.pos + count > len(self.buf):
            raise UpdateFormatError("update ends early")
        self.pos += count

    def raw(self) -> bytes:
        count = self.uint()
        start = self.pos
        self.skip(count)
        return self.buf[start : self.pos]

    def string(self) -> str:
        try:
            return self.raw().decode("utf-8")
        except UnicodeDecodeError:
            raise UpdateFormatError("string is not UTF-8") from None


def scan_update(update: bytes) -> list[StructRun]:
    """The structs of a v1 update, per client; raises ``UpdateFormatError``."""
    reader = _Reader(update)
    runs: list[StructRun] = []
    for _ in range(reader.uint()):
        count = reader.uint()
        run = StructRun(client=reader.uint())
        clock = reader.uint()
        for _ in range(count):
            length = _read_struct(reader, run)
            run.starts.append(clock)
            run.lengths.append(length)
            clock += length
        runs.append(run)
    _skip_delete_set(reader)
    if reader.pos != len(update):
        raise UpdateFormatError("bytes after the end of the update")
    return runs


def _read_struct(reader: _Reader, run: StructRun) -> int:
    info = reader.byte()
    kind = info & 0x1F
    if kind in (0, 10):  # GC and Skip: a clock range with nothing in it
        run.hangs.append(NOWHERE)
        run.refs.append(None)
        run.depths.append(0)
        return reader.uint()
    origin = (reader.uint(), reader.uint()) if info & 0x80 else None
    right = (reader.uint(), reader.uint()) if info & 0x40 else None
    if origin is None and right is None:
        if reader.uint() == 1:
            reader.string()  # a root type's name
            run.hangs.append(ROOT)
            run.refs.append(None)
        else:
            run.hangs.append(PARENT)
            run.refs.append((reader.uint(), reader.uint()))
        if info & 0x20:
            reader.string()  # the key in a map
    else:
        run.hangs.append(ORIGIN)
        run.refs.append(origin if origin is not None else right)
    length, depth = _read_content(reader, kind)
    run.depths.append(depth)
    return length


def _read_content(reader: _Reader, kind: int) -> tuple[int, int]:
    """(clock length, nesting depth) of one item's content."""
    if kind == 1:  # deleted
        return reader.uint(), 0
    if kind == 2:  # JSON (old clients): a list of JSON strings
        count = reader.uint()
        return count, max((json_depth(reader.string()) for _ in range(count)), default=0)
    if kind == 3:  # binary
        reader.raw()
        return 1, 0
    if kind == 4:  # string: its length in UTF-16 code units, as Yjs counts
        data = reader.raw()
        if data.isascii():
            return len(data), 0
        try:
            return len(data.decode("utf-8").encode("utf-16-le")) // 2, 0
        except UnicodeDecodeError:
            raise UpdateFormatError("string is not UTF-8") from None
    if kind == 5:  # embed
        return 1, json_depth(reader.string())
    if kind == 6:  # format
        reader.string()
        return 1, json_depth(reader.string())
    if kind == _TYPE_CONTENT:
        type_ref = reader.uint()
        if type_ref not in _KNOWN_TYPE_REFS:
            raise UpdateFormatError(f"unknown shared type {type_ref}")
        if type_ref in _XML_NAMED_TYPES:
            reader.string()
        return 1, 1
    if kind == 8:  # any values
        count = reader.uint()
        return count, max((any_depth(reader) for _ in range(count)), default=0)
    if kind == 9:  # a subdocument: guid and options
        reader.string()
        return 1, any_depth(reader)
    raise UpdateFormatError(f"unknown content type {kind}")


def any_depth(reader: _Reader) -> int:
    """Skip one lib0 ``any`` value; returns how deep it nests (a scalar is 0)."""
    open_containers: list[list[int]] = []  # [values left, 1 if an object (keyed)]
    deepest = 0
    while True:
        if open_containers and open_containers[-1][1]:
            reader.raw()  # the key of an object's entry
        tag = reader.byte()
        if tag in (117, 118):  # array, object
            size = reader.uint()
            deepest = max(deepest, len(open_containers) + 1)
            if size:
                open_containers.append([size, tag == 118])
                continue
        else:
            _skip_scalar(reader, tag)
        while open_containers:  # one value done: close what it completed
            open_containers[-1][0] -= 1
            if open_containers[-1][0]:
                break
            open_containers.pop()
        if not open_containers:
            return deepest


def _skip_scalar(reader: _Reader, tag: int) -> None:
    if tag in (127, 126, 121, 120):  # undefined, null, false, true
        return
    if tag == 125:  # var int
        while reader.byte() >= 0x80:
            pass
    elif tag == 124:
        reader.skip(4)
    elif tag in (123, 122):
        reader.skip(8)
    elif tag in (119, 116):  # string, bytes
        reader.raw()
    else:
        raise UpdateFormatError(f"unknown value type {tag}")


def json_depth(text: str) -> int:
    """How deep a JSON text nests (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= 1:
        return min(1, text.count("[") + text.count("{"))
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _skip_delete_set(reader: _Reader) -> None:
    for _ in range(reader.uint()):
        reader.uint()  # client
        for _ in range(reader.uint()):
            reader.uint()
            reader.uint()
