"""Keeping every document shallow enough for pycrdt to handle.

A peer's update is refused (before pycrdt sees it) when anything in it would sit deeper
than ``MAX_NESTING`` below a root: shared types inside shared types, values nested
inside values, or both. A struct's depth is the depth of the type that holds it, found
through its parent id or its neighbour (an origin, which shares its parent). Those ids
may point into the document as it already is, so the guard keeps a small index: per
client, clock ranges and the depth of what holds them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from runtimed.documents.yjs_structs import (
    NOWHERE,
    ORIGIN,
    PARENT,
    ROOT,
    StructRun,
    UpdateFormatError,
    scan_update,
)

#: How deep anything may nest below a root. Real notebooks nest a handful of levels;
#: pycrdt overflows its stack somewhere past 20,000 and Python's recursion past ~500.
MAX_NESTING = 100
#: Recorded updates kept for a later catch-up at most (a writer nobody checks against).
MAX_UNINDEXED = 64


class UpdateRejected(ValueError):
    """An update the document must not take: too deep, malformed or dangling."""


@dataclass(slots=True)
class _ClientRanges:
    """One client's clock ranges in the document and the depth of what holds each."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)

    def find(self, clock: int) -> int | None:
        i = bisect_right(self.starts, clock) - 1
        if i >= 0 and clock < self.ends[i]:
            return self.depths[i]
        return None

    def add(self, start: int, end: int, depth: int) -> None:
        if not self.starts or start >= self.ends[-1]:
            if self.starts and start == self.ends[-1] and depth == self.depths[-1]:
                self.ends[-1] = end  # the common case: a client's next edit, same place
                return
            self.starts.append(start)
            self.ends.append(end)
            self.depths.append(depth)
            return
        if self.find(start) is not None:
            return  # already known: updates may repeat what the document has
        i = bisect_right(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        self.depths.insert(i, depth)


class NestingGuard:
    """Checks updates for one document before they are applied.

    ``full_state`` returns the document's whole state as an update; the index of what is
    already there is built from it the first time an update refers to existing content.
    """

    def __init__(self, full_state: Callable[[], bytes], limit: int = MAX_NESTING) -> None:
        self._full_state = full_state
        self.limit = limit
        self._index: dict[int, _ClientRanges] | None = None
        self._unindexed: list[bytes] = []  # recorded, not yet in the index

    def check(self, update: bytes) -> None:
        """Refuse ``update`` (``UpdateRejected``) if applying it could nest too deep."""
        self.catch_up()
        self._admit(update, enforce=True)

    def record(self, update: bytes) -> None:
        """Note an update the document took without a check (the daemon's own). It is
        indexed by :meth:`catch_up`, at the latest before the next check: the daemon's
        writes (an execution's outputs) need not wait for it."""
        if self._index is not None:  # else built from the whole document when needed
            self._unindexed.append(update)
            if len(self._unindexed) > MAX_UNINDEXED:
                self.catch_up()

    @property
    def behind(self) -> bool:
        """Whether recorded updates wait for :meth:`catch_up`."""
        return bool(self._unindexed)

    def catch_up(self) -> None:
        """Index the recorded updates."""
        pending, self._unindexed = self._unindexed, []
        for update in pending:
            if self._index is None:
                return  # rebuilt from the document, which has them, when needed
            try:
                self._admit(update, enforce=False)
            except UpdateRejected:
                self._index = None  # rebuilt from the document next time

    def _admit(self, update: bytes, enforce: bool) -> None:
        try:
            runs = scan_update(update)
        except UpdateFormatError as exc:
            raise UpdateRejected(f"not a Yjs update: {exc}") from None
        holders = self._holder_depths(runs)
        if enforce:
            self._enforce(runs, holders)
        index = self._index
        if index is None:
            return
        for run, depths in zip(runs, holders, strict=True):
            ranges = index.setdefault(run.client, _ClientRanges())
            for start, length, depth in zip(run.starts, run.lengths, depths, strict=True):
                if length:
                    ranges.add(start, start + length, depth)

    def _enforce(self, runs: list[StructRun], holders: list[list[int]]) -> None:
        for run, depths in zip(runs, holders, strict=True):
            for holder, own in zip(depths, run.depths, strict=True):
                if holder + own > self.limit:
                    raise UpdateRejected(
                        f"update nests deeper than {self.limit} levels "
                        f"({holder + own} or more); not applied"
                    )

    def _holder_depths(self, runs: list[StructRun]) -> list[list[int]]:
        """For every struct, the depth of the type that holds it (root types are 0)."""
        by_client = {run.client: i for i, run in enumerate(runs)}
        holders: list[list[int | None]] = [[None] * len(run.starts) for run in runs]
        for r, run in enumerate(runs):
            for s in range(len(run.starts)):
                if holders[r][s] is None:
                    self._resolve(runs, by_client, holders, (r, s))
        return holders  # type: ignore[return-value]  # every entry is resolved

    def _resolve(
        self,
        runs: list[StructRun],
        by_client: dict[int, int],
        holders: list[list[int | None]],
        first: tuple[int, int],
    ) -> None:
        """Resolve one struct's holder depth and what it leads to, with a stack: chains
        of parents or neighbours can be as long as the update."""
        stack = [first]
        waiting = {first}
        while stack:
            r, s = stack[-1]
            run = runs[r]
            hangs, ref = run.hangs[s], run.refs[s]
            if hangs in (ROOT, NOWHERE) or ref is None:
                holders[r][s] = 0
            else:
                target = _locate(runs, by_client, ref)
                if target is None:
                    base = self._existing_depth(ref)
                else:
                    base = holders[target[0]][target[1]]  # type: ignore[assignment]
                    if base is None:
                        if target in waiting:
                            raise UpdateRejected("update refers to itself in a cycle")
                        waiting.add(target)
                        stack.append(target)
                        continue
                holders[r][s] = base + 1 if hangs == PARENT else base
                assert hangs in (PARENT, ORIGIN)
            stack.pop()
            waiting.discard((r, s))

    def _existing_depth(self, ref: tuple[int, int]) -> int:
        if self._index is None:
            self._index = {}
            self._admit(self._full_state(), enforce=False)
        ranges = self._index.get(ref[0])
        depth = ranges.find(ref[1]) if ranges is not None else None
        if depth is None:
            raise UpdateRejected(
                "update builds on changes the document does not have; sync from the start"
            )
        return depth


def _locate(
    runs: list[StructRun], by_client: dict[int, int], ref: tuple[int, int]
) -> tuple[int, int] | None:
    """The struct of this update that holds clock ``ref``, if the update has it."""
    r = by_client.get(ref[0])
    if r is None:
        return None
    run = runs[r]
    s = bisect_right(run.starts, ref[1]) - 1
    if s < 0 or ref[1] >= run.starts[s] + run.lengths[s]:
        return None
    return (r, s)
