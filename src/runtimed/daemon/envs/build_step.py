"""Running one step of an env build as a child process, bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtimed.daemon.guard import set_parent_death_signal


@dataclass(frozen=True)
class BuildFailure(Exception):
    """A build step failed. ``kind`` says whose fault: ``build``, ``network``, ``solve``,
    ``timeout``; ``spec`` names the failing package spec when known."""

    step: str
    message: str
    kind: str = "build"
    spec: str | None = None

    def __str__(self) -> str:
        return f"{self.step}: {self.message}"


async def run_build_step(
    step: str,
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``argv`` in its own process group; return its combined output.

    On timeout or cancellation the whole group is killed, so no uv (or its children)
    outlives the build that started it.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        start_new_session=True,
        preexec_fn=_die_with_daemon,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=max(timeout, 0.01))
    except TimeoutError:
        await _kill_group(proc)
        raise BuildFailure(step, f"timed out after {timeout:.0f} s", kind="timeout") from None
    except BaseException:
        await _kill_group(proc)
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BuildFailure(step, _summarize(text) or f"exit status {proc.returncode}")
    return text


def _die_with_daemon() -> None:
    # Runs in the child between fork and exec: a daemon killed with SIGKILL takes its
    # in-flight builds with it instead of leaving uv writing into a dir nobody owns.
    set_parent_death_signal()
    # Refilling a pool is background work: a kernel starting for a user goes first.
    os.nice(10)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), timeout=5)


def _summarize(output: str, max_lines: int = 6) -> str:
    """The lines of a failing tool's output that say why, without its progress chatter."""
    lines = [ln.rstrip() for ln in output.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-max_lines:])
