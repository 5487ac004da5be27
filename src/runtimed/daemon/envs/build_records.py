"""What an EnvPool keeps about its builds: the ones in flight, the backoff after failed
ones, and how a build task is stopped without losing the stopper's own cancellation."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from runtimed.daemon.envs.build_step import BuildFailure
from runtimed.errors import RuntimedError, short_message


@dataclass
class InFlightBuild:
    """One build: where it builds, for which generation of the pool, and its task."""

    env_id: str
    prefix: Path
    generation: int
    task: asyncio.Task[None] | None = None


@dataclass
class BuildBackoff:
    """Failed builds so far and when to retry: the delay doubles per round of failures."""

    attempts: int = 0
    last: BuildFailure | None = None
    retry_at: float = 0.0  # wall clock, for display
    retry_mono: float = 0.0

    def record(self, failure: BuildFailure, base_secs: float, max_secs: float) -> float | None:
        """Note a failure; returns the new delay, or None for a failure of the round that
        already set one (a parallel build), which needs no log line of its own."""
        self.last = failure
        if time.monotonic() < self.retry_mono:
            return None
        self.attempts += 1
        delay = min(base_secs * 2.0 ** (self.attempts - 1), max_secs)
        self.retry_mono = time.monotonic() + delay
        self.retry_at = time.time() + delay
        return delay

    def failing_error(self, env_type: str) -> RuntimedError:
        """What a take hears while the pool cannot build: the last failure, in short."""
        failure = self.last
        assert failure is not None
        return RuntimedError(
            f"the {env_type} pool cannot build envs: its last build failed at step "
            f"'{failure.step}' ({failure.kind}): {_gist(failure.message)}; "
            "see `runt pool status`",
            code="pool_failing",
        )


def _gist(message: str, lines: int = 3, width: int = 300) -> str:
    """The last few lines of a tool's output on one line: where the cause usually is."""
    tail = [line.strip() for line in message.strip().splitlines() if line.strip()][-lines:]
    text = " / ".join(tail)
    return text if len(text) <= width else short_message(text, width)
