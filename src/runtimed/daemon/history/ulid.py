"""ULIDs: 48 bits of milliseconds then 80 random bits, in Crockford base32 (26 chars).

They sort by creation time as strings, which is what the history's ``ORDER BY id`` needs.
Within one millisecond (or if the clock steps back) the next ULID is the last one plus
one, so the ULIDs of one process are strictly increasing (the spec's monotonic mode).
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = 0


def new_ulid(now: float | None = None) -> str:
    """A new ULID for the time ``now`` (seconds; default: the current time)."""
    global _last
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    with _lock:
        if value >> 80 <= _last >> 80:
            value = _last + 1
        _last = value
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def ulid_time(ulid: str) -> float:
    """The creation time (seconds) of a ULID; ValueError if it is not one."""
    if len(ulid) != 26:
        raise ValueError(f"{ulid!r} is not a ULID")
    value = 0
    for char in ulid.upper():
        index = _ALPHABET.find(char)
        if index < 0:
            raise ValueError(f"{ulid!r} is not a ULID")
        value = (value << 5) | index
    return (value >> 80) / 1000
