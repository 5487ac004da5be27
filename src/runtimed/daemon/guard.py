"""Parent-death guard for kernels: ``<env python> guard.py <daemon pid> -- <kernel argv...>``.

Run by the *environment's* interpreter as a script path, so it uses the standard library
only and must not import runtimed. It makes the kernel die with the daemon, even when the
daemon is killed with SIGKILL:

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` then ``execv`` the kernel. The kernel keeps
  the launcher's pid, so jupyter_client signals and polls it directly. The death signal
  fires when the *thread* that forked the kernel exits: launch kernels from the daemon's
  event-loop thread, which lives as long as the daemon.
- Elsewhere (or ``RUNTIMED_GUARD_MODE=poll``): the guard stays as the kernel's parent,
  polls the daemon pid, kills the kernel's process group when the daemon is gone, and
  forwards SIGTERM/SIGINT/SIGHUP to the kernel.

Either way, if the daemon is already gone when the guard starts, the kernel never runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
POLL_INTERVAL = 0.25


def _load_prctl() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved at import, in the parent: set_parent_death_signal also runs as a preexec_fn
# between fork and exec, where importing anything can deadlock on a lock another thread
# of the parent held at fork time.
_PRCTL = _load_prctl()


def set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent thread dies."""
    if _PRCTL is None:
        return False
    return int(_PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0


def _parent_gone(parent_pid: int) -> bool:
    return os.getppid() != parent_pid


def _exec_with_pdeathsig(parent_pid: int, argv: list[str]) -> None:
    if _parent_gone(parent_pid):  # died before prctl took effect
        os._exit(1)
    os.execv(argv[0], argv)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _run_polling(parent_pid: int, argv: list[str]) -> int:
    """Keep the kernel as a child; kill it when the daemon disappears."""
    if _parent_gone(parent_pid):
        return 1
    child = os.fork()
    if child == 0:  # pragma: no cover - replaced by the kernel
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # SIGINT reaches the kernel via its group
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return _exit_status(status)
        if _parent_gone(parent_pid):
            _kill_group(child)
            return 1
        time.sleep(POLL_INTERVAL)


def main(args: list[str]) -> int:
    """Entry point: ``guard.py <parent pid> -- <argv...>``."""
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: guard.py <parent pid> -- <kernel argv...>\n")
        return 2
    parent_pid, argv = int(args[0]), args[2:]
    # A daemon started as a background job of a non-interactive shell inherits SIGINT
    # ignored; ignored survives exec, and a Python started that way never installs its
    # KeyboardInterrupt handler, so interrupting a cell would silently do nothing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Likewise a blocked SIGINT is inherited across fork and exec: unblock it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    poll = os.environ.pop("RUNTIMED_GUARD_MODE", "") == "poll"
    if not poll and sys.platform.startswith("linux") and set_parent_death_signal():
        _exec_with_pdeathsig(parent_pid, argv)
    return _run_polling(parent_pid, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
