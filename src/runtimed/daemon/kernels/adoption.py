"""What the kernel pool runs inside a pooled kernel: the warm-up while it waits, and the
adoption that adapts it to its notebook at hand-out.

The warm-up runs with ``store_history=False`` and leaves nothing a user could see: no
output reaches a notebook (nobody listens while the kernel waits), no history, no
execution count; only names that start with ``__runtimed`` are created, then deleted.
The adoption hook unregisters itself when it has run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from runtimed.daemon.kernels.errors import KernelError
from runtimed.daemon.kernels.kernel_session import KernelSession
from runtimed.files import atomic_write

#: A kernel's first executions are 2-3x slower than later ones (cold code paths in
#: IPython and ipykernel). The warm-up pays for them while the kernel waits in the pool.
WARM_UP_RUNS = 3
_WARM_UP = "1 + 1"

# The warm-up's results went through the display hook: forget them, so that `_`, `Out`
# and the output history look as in a kernel that never ran anything.
_FORGET = """\
def __runtimed_forget():
    shell = get_ipython()
    hook = shell.displayhook
    hook._ = hook.__ = hook.___ = ""
    shell.user_ns.update({"_": "", "__": "", "___": ""})
    for key in [k for k in shell.user_ns if k[:1] == "_" and k[1:].isdigit()]:
        del shell.user_ns[key]
    shell.user_ns["_oh"].clear()
    shell.history_manager.output_hist.clear()
__runtimed_forget()
del __runtimed_forget
"""

# Installed after the warm-up: the kernel's next execution (the notebook's first cell)
# first moves it to its notebook, from what the daemon wrote to ``path`` at hand-out. A
# hook, not an execution of its own: the hand-out costs no execution round trip.
_INSTALL_ADOPTION = """\
def __runtimed_install(path):
    import json, os, sys
    shell = get_ipython()
    def adopt():
        try:
            with open(path) as f:
                adoption = json.load(f)
        except FileNotFoundError:
            return
        shell.events.unregister("pre_execute", adopt)
        os.remove(path)
        cwd, old = adoption["cwd"], adoption["old"]
        os.chdir(cwd)
        sys.path[:] = [cwd if p == old else p for p in sys.path]
        for key in adoption["removed"]:
            os.environ.pop(key, None)
        os.environ.update(adoption["changed"])
        if isinstance(shell.user_ns.get("_dh"), list):
            shell.user_ns["_dh"][:] = [cwd]
        try:
            os.rmdir(old)
        except OSError:
            pass
    shell.events.register("pre_execute", adopt)
__runtimed_install({path})
del __runtimed_install
"""


async def warm_up(session: KernelSession, adoption_file: Path) -> None:
    """Run the kernel's slow first executions now, then install the hook that reads
    ``adoption_file`` before its next execution. Raises KernelError if it fails."""
    for _ in range(WARM_UP_RUNS):
        await _run(session, _WARM_UP, silent=False)
    await _run(session, _FORGET, silent=True)
    await _run(session, _INSTALL_ADOPTION.format(path=json.dumps(str(adoption_file))), silent=True)


async def adopt(
    session: KernelSession,
    adoption_file: Path,
    cwd: Path,
    waiting_cwd: Path,
    environ: Mapping[str, str],
    launched: Mapping[str, str],
    timeout: float | None,
) -> None:
    """Hand a warmed-up kernel to a notebook: with a ``timeout``, check that it answers
    (None: it answered lately), then tell it to move from its waiting room
    ``waiting_cwd`` to ``cwd`` and take ``environ`` (what it would have been launched
    with now) where that differs from ``launched``. It moves before its next execution.
    Raises KernelError if it does not answer."""
    if timeout is not None:
        await session.ping(timeout)
    elif not session.is_alive:  # its process, asked now (the watcher polls it later)
        raise KernelError("its process has exited")
    adoption = {
        "cwd": str(cwd),
        "old": str(waiting_cwd),
        "changed": {k: v for k, v in environ.items() if launched.get(k) != v},
        "removed": [k for k in launched if k not in environ],
    }
    atomic_write(adoption_file, json.dumps(adoption).encode(), sync=False)


async def _run(session: KernelSession, code: str, silent: bool) -> None:
    reply = await session.execute(code, silent=silent, store_history=False)
    if not reply.success:
        raise KernelError(f"{reply.ename}: {reply.evalue}")
