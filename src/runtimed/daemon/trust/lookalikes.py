"""Typosquat warnings: a name one or two edits away from a popular package's.

``reqeusts`` (a transposition), ``numpyy`` (an insertion) and ``python-dateutl`` are the
names attackers register next to popular ones. A name of 5 characters or fewer is
compared at distance 1 only: at distance 2 every short name looks like another one.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def popular_names() -> frozenset[str]:
    """The bundled list (``popular_packages.txt``), normalised."""
    text = resources.files(__package__).joinpath("popular_packages.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower().replace("_", "-")
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def lookalike(name: str) -> str | None:
    """The popular package ``name`` is within 1-2 edits of, when it is not one itself."""
    name = name.lower().replace("_", "-").replace(".", "-")
    popular = popular_names()
    if name in popular or " " in name or "/" in name:
        return None
    limit = 1 if len(name) <= 5 else 2
    best: tuple[int, str] | None = None
    for candidate in popular:
        if abs(len(candidate) - len(name)) > limit or len(candidate) <= 3:
            continue
        distance = edit_distance(name, candidate, limit)
        if distance <= limit and (best is None or (distance, candidate) < best):
            best = (distance, candidate)
    return best[1] if best else None


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (adjacent transpositions count 1), or ``limit + 1``
    as soon as it is certainly over ``limit``."""
    previous2: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if previous2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[len(b)]
