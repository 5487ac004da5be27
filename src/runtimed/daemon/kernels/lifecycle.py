"""Kernel lifecycle and activity, as the runtime document reports them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class KernelLifecycle(StrEnum):
    """The kernel part of DESIGN.md's lifecycle (``preparing_env`` belongs to rooms)."""

    NOT_STARTED = "not_started"
    LAUNCHING = "launching"
    RUNNING = "running"
    RESTARTING = "restarting"
    DEAD = "dead"
    SHUTDOWN = "shutdown"


Activity = Literal["idle", "busy", "unknown"]


@dataclass(frozen=True)
class KernelState:
    """A snapshot handed to state listeners whenever lifecycle or activity changes.

    ``error`` says why the kernel is dead or failed to start (None otherwise);
    ``exit_code`` is the process exit code once known (negative: killed by that signal).
    """

    lifecycle: KernelLifecycle
    activity: Activity = "unknown"
    error: str | None = None
    exit_code: int | None = None
