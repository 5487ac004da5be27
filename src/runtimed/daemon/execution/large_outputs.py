"""Large kernel messages, decoded in a worker thread with their big values going straight
into blobs.

A 200 MB ``print`` arrives as one message. Decoded whole it becomes a 200 MB ``str``, then
200 MB of UTF-8 for its blob, beside the 200 MB received; and decoding, encoding, hashing
and writing it would hold the event loop for a second. Here the message's JSON is parsed
with its big string values left raw (views of the received bytes, found a megabyte at a
time by :mod:`json_fields`, since one msgspec call over them would hold the GIL), and
each is turned into blob bytes a megabyte at a time, written and hashed as it goes. The
event loop gets a small message: stream text as ``SpilledText`` (blob references and a
live tail), MIME payloads as blob references. Anything unusual (terminal control
characters, a value that is not a string) is decoded the ordinary way, in the thread.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec

from runtimed.daemon.blobs.blob_store import BlobWriter
from runtimed.daemon.execution.json_fields import object_fields
from runtimed.daemon.kernels.channels import decode_parts
from runtimed.daemon.kernels.execution import Message
from runtimed.documents.blob_refs import BlobRef, is_binary_mime, is_json_mime, make_ref
from runtimed.errors import RuntimedError

log = logging.getLogger(__name__)

#: String values at least this big are stored as they are decoded.
LARGE_VALUE = 1 << 20
#: Raw JSON decoded per step: the thread lets the event loop run between steps.
STEP = 1 << 20
#: Stream text goes into blobs of at most this size (each fetched on its own).
PART = 64 << 20
#: A tail of the text after its last newline up to this long stays live.
LIVE_TAIL = 64 * 1024

_json = msgspec.json.Decoder()
_TERMINAL_CONTROLS = ("\r", "\b", "\x1b")
_QUOTE, _BACKSLASH, _U = ord('"'), ord("\\"), ord("u")
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_LOW_SURROGATE = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_DISPLAY_TYPES = ("display_data", "execute_result", "update_display_data")


@dataclass(frozen=True)
class SpilledText:
    """Stream text already stored: blob references in order, then a live tail."""

    refs: tuple[BlobRef, ...]
    tail: str


@runtime_checkable
class BlobWriters(Protocol):
    def writer(self, media_type: str = ...) -> BlobWriter: ...


class _NotPlain(Exception):
    """The value needs the ordinary path (terminal controls, escapes we cannot split)."""


class LargeMessageDecoder:
    """``decode(parts)`` for ``KernelChannels.decode_large``: runs in a worker thread."""

    def __init__(self, blobs: BlobWriters) -> None:
        self.blobs = blobs

    def decode(self, parts: list[memoryview]) -> Message:
        header = _json.decode(parts[1])
        msg_type = header.get("msg_type")
        if len(parts[4]) < LARGE_VALUE or msg_type not in ("stream", *_DISPLAY_TYPES):
            return decode_parts(parts)
        try:
            fields = object_fields(parts[4])
        except msgspec.DecodeError:
            return decode_parts(parts)  # raises the same error, the usual way
        # Everything but the one field that can be huge decodes the usual way.
        big, convert = ("text", self._text) if msg_type == "stream" else ("data", self._data)
        content = {key: _json.decode(value) for key, value in fields.items() if key != big}
        if big in fields:
            content[big] = convert(fields[big])
        return decode_parts(parts, content)

    # --- streams -------------------------------------------------------------------------

    def _text(self, raw: memoryview) -> Any:
        try:
            return self._spill_text(raw)
        except (_NotPlain, msgspec.DecodeError, RuntimedError, OSError) as exc:
            if not isinstance(exc, _NotPlain):
                log.warning("a large stream output stays in memory: %s", exc)
            return _json.decode(raw)

    def _spill_text(self, raw: memoryview) -> SpilledText:
        if len(raw) < LARGE_VALUE or raw[0] != _QUOTE:
            raise _NotPlain
        refs: list[BlobRef] = []
        writer: BlobWriter | None = None
        tail = ""
        try:
            for last, piece in _string_pieces(raw):
                if last:
                    piece, tail = _split_tail(piece)
                if piece:
                    writer = writer or self.blobs.writer("text/plain")
                    writer.write(piece)
                if writer is not None and (writer.size >= PART or last):
                    refs.append(_commit(writer))
                    writer = None
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        return SpilledText(tuple(refs), tail)

    # --- MIME bundles --------------------------------------------------------------------

    def _data(self, raw: memoryview) -> Any:
        try:
            data = object_fields(raw)
        except msgspec.DecodeError:
            return _json.decode(raw)  # not an object: as the kernel sent it
        return {mime: self._payload(mime, value) for mime, value in data.items()}

    def _payload(self, mime: str, view: memoryview) -> Any:
        if len(view) < LARGE_VALUE or view[0] != _QUOTE or is_json_mime(mime):
            return _json.decode(view)  # the writer decides (small, JSON, a list of lines)
        writer = None
        try:
            writer = self.blobs.writer(mime)
            pieces = (piece for _, piece in _string_pieces(view, plain_only=False))
            if is_binary_mime(mime):
                _write_base64(writer, pieces)
            else:
                for piece in pieces:
                    writer.write(piece)
            return _commit(writer)
        except (_NotPlain, msgspec.DecodeError, binascii.Error, RuntimedError, OSError) as exc:
            if writer is not None:
                writer.abort()
            if isinstance(exc, OSError | RuntimedError | msgspec.DecodeError):
                log.warning("a large %s output stays in memory: %s", mime, exc)
            return _json.decode(view)


def _commit(writer: BlobWriter) -> BlobRef:
    return make_ref(writer.commit(), writer.size, writer.media_type)


def _string_pieces(raw: memoryview, plain_only: bool = True) -> Iterator[tuple[bool, bytes]]:
    """A raw JSON string (quotes included) as UTF-8 pieces of about STEP bytes;
    ``(is_last, piece)``. ``plain_only``: raise _NotPlain at terminal controls."""
    end = len(raw) - 1  # the closing quote
    pos = 1
    while pos < end:
        cut = _safe_cut(raw, pos, min(pos + STEP, end))
        chunk = bytes(raw[pos:cut])
        if b"\\" not in chunk:  # no escapes: the JSON bytes are the UTF-8 text
            piece = chunk
        else:
            text: str = _json.decode(b'"' + chunk + b'"')
            if plain_only and any(c in text for c in _TERMINAL_CONTROLS):
                raise _NotPlain
            piece = text.encode("utf-8", errors="replace")  # lone surrogates
        pos = cut
        yield pos >= end, piece


def _safe_cut(raw: memoryview, start: int, cut: int) -> int:
    """``cut`` moved back so that it splits no character, no escape sequence and no
    escaped surrogate pair (``\\ud83d\\ude00``)."""
    end = len(raw) - 1
    if cut >= end:
        return end
    while cut > start and 0x80 <= raw[cut] < 0xC0:
        cut -= 1  # a UTF-8 continuation byte: back to the character's first byte
    # Only the last backslash of the 6 bytes before the cut can start an escape that
    # covers it (an earlier one's \uXXXX would contain this backslash).
    low = max(1, cut - 6)
    last = bytes(raw[low:cut]).rfind(b"\\")
    if last >= 0 and _starts_escape(raw, low + last):
        q = low + last
        if q + (6 if raw[q + 1] == _U else 2) > cut:
            cut = q
    if (
        cut >= 7
        and _LOW_SURROGATE.fullmatch(bytes(raw[cut : cut + 6]))
        and _HIGH_SURROGATE.fullmatch(bytes(raw[cut - 6 : cut]))
        and _starts_escape(raw, cut - 6)
    ):
        cut -= 6
    if cut <= start:
        raise _NotPlain  # no safe place in this step: the ordinary path
    return cut


def _starts_escape(raw: memoryview, q: int) -> bool:
    """Whether the backslash at ``q`` starts an escape: it ends an odd run of them."""
    run = 0
    while q >= 1 and raw[q] == _BACKSLASH:
        run += 1
        q -= 1
    return run % 2 == 1


def _split_tail(piece: bytes) -> tuple[bytes, str]:
    """The last piece of stream text -> (to store, live tail after the last newline)."""
    newline = piece.rfind(b"\n")
    tail = piece[newline + 1 :]
    if len(tail) > LIVE_TAIL:
        return piece, ""
    try:
        return piece[: newline + 1], tail.decode("utf-8")
    except UnicodeDecodeError:
        return piece, ""


def _write_base64(writer: BlobWriter, pieces: Iterator[bytes]) -> None:
    """Decode base64 text (line breaks allowed) piece by piece into ``writer``."""
    carry = b""
    for piece in pieces:
        data = carry + b"".join(piece.split())
        usable = len(data) - len(data) % 4
        carry = data[usable:]
        writer.write(base64.b64decode(data[:usable], validate=True))
    if carry:
        raise binascii.Error("base64 text of a length that is not a multiple of 4")
