"""One connected client of a room."""

from __future__ import annotations

import itertools
import logging
import weakref
from typing import Any

from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType, pack, pack_json

log = logging.getLogger(__name__)

_ids = itertools.count(1)

#: A peer that lets this much pile up unread is dropped rather than grow the daemon's memory.
MAX_BUFFERED = 64 * 1024 * 1024
#: Presence frames are small; a peer this far behind skips them (the next one replaces
#: what it missed) instead of queueing them.
MAX_AWARENESS = 1024 * 1024
SKIP_EPHEMERAL_BEHIND = 1024 * 1024
#: A peer behind by more than this is checked against the daemon-wide budget.
CHECK_BUDGET_BEHIND = 1024 * 1024


class OutgoingBudget:
    """Bytes queued for every peer together: many slow readers, each under its own
    limit, cannot take the daemon's memory either. The peer that pushes the total over
    the limit is the one dropped."""

    def __init__(self, limit: int = 512 * 1024 * 1024) -> None:
        self.limit = limit
        self._peers: weakref.WeakSet[Peer] = weakref.WeakSet()

    def add(self, peer: Peer) -> None:
        self._peers.add(peer)

    def total(self) -> int:
        return sum(p.stream.buffered for p in list(self._peers) if not p.closed)


SHARED_BUDGET = OutgoingBudget()


class Peer:
    """Sends frames without awaiting: a slow reader never stalls the room.

    Frames queued in one event-loop turn go out in one write (see FrameConnection): an
    execution produces a handful of document and runtime updates at once.
    """

    def __init__(
        self,
        stream: FrameConnection,
        name: str | None = None,
        budget: OutgoingBudget = SHARED_BUDGET,
    ) -> None:
        self.stream = stream
        self.id = next(_ids)
        self.name = name or f"peer-{self.id}"
        self.closed = False
        self.awareness: bytes | None = None
        self.budget = budget
        budget.add(self)

    def send(self, frame_type: FrameType, payload: bytes) -> None:
        self.send_frame(pack(frame_type, payload))

    def send_frame(self, frame: bytes) -> None:
        """Queue a frame that already starts with its type byte."""
        if self.closed:
            return
        stream = self.stream
        if stream.closing:
            self.closed = True
            return
        behind = stream.buffered
        if behind > MAX_BUFFERED:
            self._drop(f"{behind} bytes unread")
            return
        if behind > CHECK_BUDGET_BEHIND and self.budget.total() > self.budget.limit:
            self._drop(f"{behind} bytes unread while the daemon's outgoing budget is spent")
            return
        stream.send(frame)

    def send_event(self, event: dict[str, Any]) -> None:
        """An event for this peer alone (``input_request``, ...)."""
        self.send_frame(pack_json(FrameType.EVENT, event))

    def send_ephemeral(self, frame_type: FrameType, payload: bytes) -> None:
        """A frame worth sending only to a peer that keeps up (presence)."""
        if not self.closed and self.stream.buffered <= SKIP_EPHEMERAL_BEHIND:
            self.send(frame_type, payload)

    def _drop(self, why: str) -> None:
        log.warning("dropping %s: %s", self.name, why)
        self.closed = True
        self.stream.abort()

    def flush(self) -> None:
        """Hand what is queued to the transport now, not at the end of this loop turn."""
        if not self.closed:
            self.stream.flush()

    async def drain(self) -> None:
        """Write what is queued and wait until the transport took it."""
        await self.stream.drain()

    def __repr__(self) -> str:
        return f"<Peer {self.name}>"
