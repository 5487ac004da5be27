"""How a room's stored document is framed on disk, and how each piece is checked.

Format 2 (``FORMAT``, named in the room's meta):

- snapshot (``<key>.ydoc``): ``SNAPSHOT_MAGIC``, the payload's length (8 bytes) and
  CRC-32 (4 bytes), then the payload: the document's whole state as a Yjs v1 update;
- log record (``<key>.wal``, ``<key>.wal.old``): the payload's length and CRC-32 (4 bytes
  each, big-endian), then the payload: one update.

Every CRC starts from the room's seed, a CRC of its notebook id and epoch, so a snapshot
or record of another room (or of another history of this room) fails its check just as a
damaged one does. A torn or damaged record ends what is readable of its log.

Stores written before checksums (format 1: a bare snapshot, records of length + payload)
are still read: each piece must decode as a Yjs update, else it is damaged.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from runtimed.documents.yjs_structs import UpdateFormatError, scan_update

FORMAT = 2
SNAPSHOT_MAGIC = b"RTYDOC2\n"
_SNAPSHOT_HEADER = struct.Struct(">8sQI")
_RECORD_HEADER = struct.Struct(">II")
_LEGACY_RECORD_HEADER = struct.Struct(">I")


class Damaged(ValueError):
    """A stored file that cannot be used as it is; the message says what is wrong."""


def room_seed(notebook_id: str, epoch: str) -> int:
    """The CRC every checksum of this room's history starts from."""
    return zlib.crc32(f"{notebook_id}\0{epoch}".encode())


def snapshot_bytes(state: bytes, seed: int) -> bytes:
    """A snapshot file's content: header (magic, length, CRC) and ``state``."""
    return _SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, len(state), zlib.crc32(state, seed)) + state


def read_snapshot(data: bytes, seed: int, legacy: bool) -> bytes:
    """The document's state in a snapshot file's ``data``; ``Damaged`` if it fails its
    checks. ``legacy``: the store may predate checksums (a bare update is accepted when
    it decodes)."""
    if not data:
        raise Damaged("empty")
    if data.startswith(SNAPSHOT_MAGIC):
        return _checked_snapshot(data, seed)
    if not legacy:
        raise Damaged("not a snapshot (no header)")
    try:
        scan_update(data)
    except UpdateFormatError as exc:
        raise Damaged(f"not a Yjs update ({exc})") from None
    return data


def _checked_snapshot(data: bytes, seed: int) -> bytes:
    if len(data) < _SNAPSHOT_HEADER.size:
        raise Damaged("truncated header")
    _, length, crc = _SNAPSHOT_HEADER.unpack_from(data)
    state = data[_SNAPSHOT_HEADER.size :]
    if len(state) != length:
        raise Damaged(f"{len(state)} bytes where its header says {length}")
    if zlib.crc32(state, seed) != crc:
        raise Damaged("fails its checksum (damaged, or another room's)")
    return state


def log_record(update: bytes, seed: int) -> bytes:
    """One log record: header (length, CRC) and ``update``."""
    return _RECORD_HEADER.pack(len(update), zlib.crc32(update, seed)) + update


@dataclass(frozen=True)
class LogContent:
    """What is readable of a log: its records up to the first bad one, and what is wrong
    after them (None when every byte was read)."""

    records: list[bytes]
    damage: str | None = None


def read_log(data: bytes, seed: int, legacy: bool) -> LogContent:
    """The records of a log file's ``data``, up to the first that fails its check."""
    return _read_legacy_log(data) if legacy else _read_checked_log(data, seed)


def _read_checked_log(data: bytes, seed: int) -> LogContent:
    records: list[bytes] = []
    pos, end, header = 0, len(data), _RECORD_HEADER.size
    while pos < end:
        if end - pos < header:
            return LogContent(records, f"a torn record at byte {pos}")
        length, crc = _RECORD_HEADER.unpack_from(data, pos)
        start = pos + header
        if length == 0 or start + length > end:
            return LogContent(records, f"a torn or damaged record at byte {pos}")
        update = data[start : start + length]
        if zlib.crc32(update, seed) != crc:
            return LogContent(records, f"a record failing its checksum at byte {pos}")
        records.append(update)
        pos = start + length
    return LogContent(records)


def _read_legacy_log(data: bytes) -> LogContent:
    records: list[bytes] = []
    pos, end, header = 0, len(data), _LEGACY_RECORD_HEADER.size
    while pos < end:
        if end - pos < header:
            return LogContent(records, f"a torn record at byte {pos}")
        (length,) = _LEGACY_RECORD_HEADER.unpack_from(data, pos)
        start = pos + header
        if start + length > end:
            return LogContent(records, f"a torn record at byte {pos}")
        update = data[start : start + length]
        if update:
            try:
                scan_update(update)
            except UpdateFormatError as exc:
                why = f"a record that is not a Yjs update at byte {pos} ({exc})"
                return LogContent(records, why)
            records.append(update)
        pos = start + length
    return LogContent(records)


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs v1 state vector: the next clock of each client (``Damaged`` if malformed)."""
    values, pos = [], 0
    while pos < len(data):
        value, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise Damaged("malformed state vector")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        values.append(value)
    if not values or len(values) != 1 + 2 * values[0]:
        raise Damaged("malformed state vector")
    return dict(zip(values[1::2], values[2::2], strict=True))


def missing_state(state: bytes, clean_state: str | None) -> str | None:
    """Why a document whose state vector is ``state`` cannot be the one whose file was
    saved or loaded at ``clean_state`` (hex), or None if it holds at least that much."""
    if clean_state is None:
        return None
    try:
        clean = decode_state_vector(bytes.fromhex(clean_state))
    except (ValueError, Damaged):
        return "its meta's clean state is unreadable"
    have = decode_state_vector(state)
    lacking = sum(1 for client, clock in clean.items() if have.get(client, 0) < clock)
    if lacking:
        return f"lacks updates of {lacking} client(s) its file was saved with"
    return None
