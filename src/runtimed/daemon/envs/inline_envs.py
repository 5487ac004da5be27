"""Envs built from a notebook's own dependencies (``inline-envs/``): one per dependency
set, however it is spelled; when each was last used; which may go.

``ipykernel>=6``, ``ipykernel >= 6.0`` and ``IPyKernel>=6.0.0`` are one dependency, so
they share one env. Every use touches a marker; the collector removes envs unused for
too long, beyond a count, or beyond a disk budget, least recently used first, and never
an env a kernel runs in.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtimed.daemon.envs.env_record import READY_MARKER, remove_env_dir
from runtimed.protocol.control import EnvUsage

if TYPE_CHECKING:
    from packaging.specifiers import Specifier

log = logging.getLogger(__name__)

LAST_USED_MARKER = ".runtimed-last-used"


# --- one dependency set, one env -----------------------------------------------------------


def normalize_specs(specs: Iterable[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated, canonical spellings of PEP 508 requirements (anything that
    does not parse is kept as written: the builder will report it)."""
    return tuple(sorted({_normalize(spec) for spec in specs}))


def _normalize(spec: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        req = Requirement(spec)
    except InvalidRequirement:
        return spec.strip()
    name = canonicalize_name(req.name)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    if req.url:
        return f"{name}{extras} @ {req.url}"
    specifiers = ",".join(sorted(_specifier(s) for s in req.specifier))
    marker = f"; {req.marker}" if req.marker else ""
    return f"{name}{extras}{specifiers}{marker}"


def _specifier(spec: Specifier) -> str:
    from packaging.version import InvalidVersion, Version

    version = spec.version
    if spec.operator in ("==", "!=") and version.endswith(".*"):
        return f"{spec.operator}{version}"
    try:
        parsed = Version(version)
    except InvalidVersion:
        return str(spec)
    release = list(parsed.release)
    while len(release) > 1 and release[-1] == 0 and spec.operator != "~=":
        release.pop()  # 6.0.0 == 6.0 == 6 (but ~=6.0 and ~=6 differ)
    text = ".".join(map(str, release))
    if parsed.epoch:
        text = f"{parsed.epoch}!{text}"
    if parsed.pre:
        text += f"{parsed.pre[0]}{parsed.pre[1]}"
    if parsed.post is not None:
        text += f".post{parsed.post}"
    if parsed.dev is not None:
        text += f".dev{parsed.dev}"
    if parsed.local:
        text += f"+{parsed.local}"
    return f"{spec.operator}{text}"


# --- use markers and listing ---------------------------------------------------------------


def touch_last_used(prefix: Path) -> None:
    """Record that a kernel is about to run in the env at ``prefix``."""
    marker = prefix / LAST_USED_MARKER
    try:
        marker.touch()
    except OSError:
        log.warning("cannot mark %s as used", prefix)


def dir_size(path: Path) -> int:
    """Bytes of the files below ``path`` (hard links to the package cache count once
    per env: what deleting the env frees at most)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def usage_of(prefix: Path, kind: str, in_use: set[str]) -> EnvUsage:
    stat_time = _mtime(prefix / READY_MARKER) or _mtime(prefix)
    return EnvUsage(
        name=prefix.name,
        path=str(prefix),
        kind=kind,
        size_bytes=dir_size(prefix),
        created_at=stat_time,
        last_used_at=_mtime(prefix / LAST_USED_MARKER) or stat_time,
        in_use=str(prefix) in in_use,
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --- collecting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InlineEnvLimits:
    """When inline envs go: unused this long, beyond this many, beyond this many bytes."""

    max_age_secs: float
    max_count: int
    budget_bytes: int


class InlineEnvs:
    """The inline-envs dir of one daemon; ``in_use`` lists env paths kernels run in."""

    def __init__(self, inline_dir: Path, in_use: Callable[[], set[str]]) -> None:
        self.inline_dir = inline_dir
        self.in_use = in_use

    def scan(self) -> list[EnvUsage]:
        """Every inline env, most recently used first (blocking: call from a thread)."""
        if not self.inline_dir.is_dir():
            return []
        busy = self.in_use()
        found = [
            usage_of(prefix, prefix.name.split("-", 1)[0], busy)
            for prefix in self.inline_dir.iterdir()
            if prefix.is_dir() and not prefix.name.startswith(".")
        ]
        return sorted(found, key=lambda e: e.last_used_at, reverse=True)

    def doomed(
        self, envs: list[EnvUsage], limits: InlineEnvLimits, everything: bool = False
    ) -> list[EnvUsage]:
        """Which of ``envs`` (most recently used first) the limits remove; never one in
        use. ``everything``: every unused env."""
        now = time.time()
        keep: list[EnvUsage] = []
        doomed: list[EnvUsage] = []
        for env in envs:
            if env.in_use:
                keep.append(env)
            elif everything or now - env.last_used_at > limits.max_age_secs:
                doomed.append(env)
            else:
                keep.append(env)
        for env in reversed(list(keep)):  # least recently used first
            over_count = len(keep) > limits.max_count
            over_budget = sum(e.size_bytes for e in keep) > limits.budget_bytes
            if env.in_use or not (over_count or over_budget):
                continue
            keep.remove(env)
            doomed.append(env)
        return doomed

    def remove(self, envs: list[EnvUsage]) -> list[EnvUsage]:
        """Delete ``envs`` (re-checking that none came into use); returns those deleted."""
        busy = self.in_use()
        removed = []
        for env in envs:
            prefix = Path(env.path)
            if str(prefix) in busy or prefix.parent != self.inline_dir:
                continue
            remove_env_dir(prefix)
            if not prefix.exists():
                removed.append(env)
                log.info("removed inline env %s (%d MB)", env.name, env.size_bytes // 2**20)
        return removed
