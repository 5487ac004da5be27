"""Parent-death guard for kernels: ``<python> guard.py <daemon pid> -- <kernel argv...>``.

Run by an interpreter as a script path (the kernel env's, or the daemon's for installed
kernelspecs), so it uses the standard library only and must not import runtimed. Nothing
a kernel starts outlives it:

- Linux: the guard is a *subreaper* (``PR_SET_CHILD_SUBREAPER``) and the kernel's parent.
  Whatever the kernel starts and abandons, even with ``start_new_session=True``, is
  re-parented to the guard instead of to init. When the kernel exits (shutdown, restart,
  a crash) or the guard gets SIGTERM or SIGHUP, it SIGKILLs every process left below it,
  reaps them, and exits as the kernel did. The daemon's death reaches it as SIGTERM
  (``PR_SET_PDEATHSIG``, also on a SIGKILL of the daemon); the kernel has SIGKILL as its
  own death signal, so it cannot outlive the guard either. A subreaper, not a cgroup:
  it needs no privileges or systemd delegation, and works in containers.
- Elsewhere (or ``RUNTIMED_GUARD_MODE=poll``): the guard stays as the kernel's parent,
  polls the daemon pid, kills the kernel's process group when the daemon is gone, and
  forwards SIGTERM/SIGHUP to the kernel.

SIGINT reaches the kernel directly (jupyter_client signals the process group); the guard
ignores it. If the daemon is already gone when the guard starts, the kernel never runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
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


class _Stop(Exception):
    """SIGTERM or SIGHUP: stop the kernel and everything below it."""


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _Stop


def _run_subreaper(parent_pid: int, argv: list[str]) -> int:
    """The kernel as a child of a subreaper guard; see the module docstring."""
    assert _PRCTL is not None
    if int(_PRCTL(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) != 0:
        return _run_polling(parent_pid, argv)
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    if _parent_gone(parent_pid):  # died before prctl took effect
        return 1
    guard = os.getpid()
    status: int | None = None
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - replaced by the kernel
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                if set_parent_death_signal() and os.getppid() == guard:
                    os.execv(argv[0], argv)
            finally:
                os._exit(127)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel gets it via its group
        while status is None:
            pid, waited = os.waitpid(-1, 0)  # orphans re-parented here are reaped too
            if pid == child:
                status = waited
    except (_Stop, ChildProcessError):
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleaning up: a second one waits
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _kill_descendants(guard)
    if status is None:
        return 128 + signal.SIGTERM
    if os.WIFSIGNALED(status):  # die the kernel's death: jupyter_client reports it
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be handled anyway
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(guard, sig)
    return _exit_status(status)


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    stack = [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found


def _kill_descendants(root: int, rounds: int = 100) -> None:
    """SIGKILL everything below ``root`` and reap what lands on it, until nothing is
    left (a process may fork while it is being killed: a few rounds)."""
    for _ in range(rounds):
        pids = _descendants(root)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.002)


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
    if not poll and sys.platform.startswith("linux") and _PRCTL is not None:
        return _run_subreaper(parent_pid, argv)
    return _run_polling(parent_pid, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
