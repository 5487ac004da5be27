"""KernelPool: started, idle kernels for new notebooks, in front of another provider.

A new notebook's first result is mostly ipykernel starting (~0.3 s). The pool keeps
``size`` kernels of the default prewarmed env source started and idle. Each is handed out
once and never comes back (kernels carry state). It must have answered within the last
``FRESH_SECS`` (the pool asks its waiting kernels every ``CHECK_SECS``; a kernel not heard
from lately is asked at hand-out, costing a round trip), then it is adapted, silently, to
its notebook: working directory, ``sys.path[0]``, environment,
IPython's directory history; nothing runs that a user could see (no output, no history,
the first user cell is ``[1]``). Requests the pool cannot serve (inline deps, a pyproject,
another source) go to the provider behind it. While it waits, a kernel has already run its
slow first executions (``adoption.warm_up``), so the notebook's first cell is not one.

Refills start one kernel at a time, only while no cell runs anywhere in the daemon, and
not at once after a hand-out: a refill never competes with a user's cell for the CPU.
Kernels of a flushed or reconfigured env pool, or of a source that is no longer the
default, are replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from runtimed.daemon.envs.resolver import ResolvedEnv
from runtimed.daemon.kernels.adoption import adopt, warm_up
from runtimed.daemon.kernels.errors import KernelError
from runtimed.daemon.kernels.kernelspec import env_variables
from runtimed.daemon.kernels.lifecycle import KernelLifecycle
from runtimed.daemon.kernels.provider import AcquiredKernel, KernelProvider, KernelRequest
from runtimed.daemon.tasks import stop_task
from runtimed.errors import RuntimedError, short_message
from runtimed.protocol.control import KernelPoolStatus

log = logging.getLogger(__name__)

#: How long a pooled kernel may take to answer the adoption before it is discarded.
ADOPT_TIMEOUT_SECS = 5.0
#: A waiting kernel that answered this recently is handed out without asking it again: the
#: round trip was ~5 ms of a new notebook's ~30 ms first result. Its process is asked at
#: hand-out whether it exited (``is_alive``); an idle kernel that stops answering is found
#: by the checks below and replaced.
FRESH_SECS = 10.0
#: How often the pool asks its waiting kernels to answer (a kernel_info round trip).
CHECK_SECS = 4.0
#: Quiet time after a hand-out (or a busy spell) before a refill starts.
REFILL_DELAY_SECS = 1.0
RETRY_SECS = 30.0


class SourceChooser(Protocol):
    """What ``auto`` means for a notebook (``EnvResolver.choose``)."""

    async def choose(
        self, metadata: dict[str, Any], notebook_path: str | None, first_code_cell: str | None
    ) -> str: ...


class PoolGeneration(Protocol):
    """An env pool's generation: bumped by a flush or a new package set (``EnvPool``)."""

    @property
    def generation(self) -> int: ...


@dataclass
class _Pooled:
    kernel: AcquiredKernel
    env_source: str
    generation: int
    cwd: Path
    #: The environment it was launched with (ipykernel changes a few variables itself).
    launch_env: dict[str, str]
    #: Where the hand-out tells the kernel its notebook's directory and environment.
    adoption_file: Path
    env: ResolvedEnv
    #: When it last answered (``time.monotonic()``).
    answered_at: float = 0.0


class KernelPool:
    """A ``KernelProvider``: pooled kernels when it can, ``inner`` otherwise."""

    def __init__(
        self,
        inner: KernelProvider,
        resolver: SourceChooser,
        env_pools: Mapping[str, PoolGeneration],
        size: Callable[[], int],
        default_env: Callable[[], str],
        busy: Callable[[], bool],
        pool_dir: Path,
    ) -> None:
        self.inner = inner
        self.resolver = resolver
        self.env_pools = env_pools
        self.size = size
        self.default_env = default_env
        self.busy = busy
        self.pool_dir = pool_dir
        self._ready: deque[_Pooled] = deque()
        self._starting = 0
        self._error: str | None = None
        self._retry_at = 0.0
        self._quiet_until = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._serial = 0

    # --- the provider --------------------------------------------------------------------

    @property
    def env_source(self) -> str:
        """The source this pool serves: the default env's prewarmed pool."""
        return f"{self.default_env()}:prewarmed"

    async def acquire(self, request: KernelRequest) -> AcquiredKernel:
        if request.kernel.spec is not None:  # an installed kernelspec: never pooled
            return await self.inner.acquire(request)
        source = request.env_source
        if source == "auto":
            source = await self.resolver.choose(
                request.metadata, request.notebook_path, request.first_code_cell
            )
        while self._ready and source == self.env_source:
            pooled = self._ready.popleft()
            self._quiet_until = time.monotonic() + REFILL_DELAY_SECS
            self._wake.set()
            if self._usable(pooled) and await self._adopt(pooled, request):
                log.info("handed out a pooled kernel (pid %s)", pooled.kernel.session.pid)
                return pooled.kernel
            await self._discard(pooled)
        return await self.inner.acquire(replace(request, env_source=source))

    async def release(self, kernel: AcquiredKernel) -> None:
        await self.inner.release(kernel)

    async def release_env(self, env: ResolvedEnv) -> None:
        await self.inner.release_env(env)

    def env_paths(self) -> set[str]:
        """The envs the waiting kernels run in (in use: never collected)."""
        return {p.env.env.venv_path for p in self._ready}

    def status(self) -> KernelPoolStatus:
        return KernelPoolStatus(
            env_source=self.env_source,
            available=len(self._ready),
            warming=self._starting,
            target=self.size(),
            error=self._error,
        )

    # --- adoption ------------------------------------------------------------------------

    async def _adopt(self, pooled: _Pooled, request: KernelRequest) -> bool:
        session = pooled.kernel.session
        fresh = time.monotonic() - pooled.answered_at < FRESH_SECS
        request.cwd.mkdir(parents=True, exist_ok=True, mode=0o700)
        # What a kernel launched now would have had that this one was not launched with.
        environ = env_variables(session.config.python_path, session.config.ipython_dir)
        try:
            await adopt(
                session,
                pooled.adoption_file,
                request.cwd,
                pooled.cwd,
                environ,
                pooled.launch_env,
                None if fresh else ADOPT_TIMEOUT_SECS,
            )
        except KernelError as exc:
            log.warning("a pooled kernel did not answer (%s); using another", exc)
            return False
        session.relocate(request.cwd)
        session.set_unrouted_handler(request.on_unrouted)
        if request.on_launching is not None:
            request.on_launching(pooled.env)
        if request.on_state is not None:
            session.add_listener(request.on_state)
        return True

    def _usable(self, pooled: _Pooled) -> bool:
        pool = self.env_pools.get(pooled.env.env.env_type)
        return (
            pooled.kernel.session.lifecycle is KernelLifecycle.RUNNING
            and pooled.env_source == self.env_source
            and (pool is None or pool.generation == pooled.generation)
        )

    async def _discard(self, pooled: _Pooled) -> None:
        await self._discard_kernel(pooled.kernel)
        shutil.rmtree(pooled.cwd, ignore_errors=True)  # its waiting room

    async def _discard_kernel(self, kernel: AcquiredKernel) -> None:
        with contextlib.suppress(Exception):
            await self.inner.release(kernel)

    # --- refilling -----------------------------------------------------------------------

    def start(self) -> None:
        shutil.rmtree(self.pool_dir, ignore_errors=True)  # waiting rooms of a past daemon
        self._task = asyncio.create_task(self._supervise(), name="kernel-pool")

    def wake(self) -> None:
        self._wake.set()

    async def _supervise(self) -> None:
        while not self._closed:
            self._wake.clear()
            await self._drop_stale()
            await self._check_waiting()
            delay = self._next_refill_in()
            if delay <= 0:
                await self._start_one()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(delay, CHECK_SECS))

    def _next_refill_in(self) -> float:
        """Seconds until a refill may start (inf: the pool is full)."""
        if len(self._ready) >= self.size():
            return float("inf")
        now = time.monotonic()
        if self.busy():
            self._quiet_until = now + REFILL_DELAY_SECS
        return max(self._quiet_until - now, self._retry_at - now, 0.0)

    async def _drop_stale(self) -> None:
        keep: deque[_Pooled] = deque()
        doomed: list[_Pooled] = []
        for pooled in self._ready:
            (keep if self._usable(pooled) else doomed).append(pooled)
        while len(keep) > self.size():
            doomed.append(keep.pop())
        self._ready = keep
        for pooled in doomed:
            await self._discard(pooled)

    async def _check_waiting(self) -> None:
        """Ask each waiting kernel not heard from for ``CHECK_SECS`` to answer; one that
        does not is replaced. Not while a cell runs (the hand-out then asks instead)."""
        for pooled in list(self._ready):
            if self.busy() or time.monotonic() - pooled.answered_at < CHECK_SECS:
                continue
            try:
                await pooled.kernel.session.ping(ADOPT_TIMEOUT_SECS)
            except KernelError as exc:
                if pooled in self._ready:
                    self._ready.remove(pooled)
                    log.warning("a pooled kernel stopped answering (%s); replacing it", exc)
                    await self._discard(pooled)
                continue
            pooled.answered_at = time.monotonic()

    async def _start_one(self) -> None:
        source = self.env_source
        env_type = source.split(":", 1)[0]
        pool = self.env_pools.get(env_type)
        generation = pool.generation if pool is not None else 0
        self._serial += 1
        cwd = self.pool_dir / f"kernel-{self._serial}"
        request = KernelRequest(env_source=source, metadata={}, notebook_path=None, cwd=cwd)
        self._starting += 1
        try:
            kernel = await self.inner.acquire(request)
            config = kernel.session.config
            launch_env = env_variables(config.python_path, config.ipython_dir)
            adoption_file = self._adoption_file(kernel)
            await self._warm_up(kernel, adoption_file)
        except RuntimedError as exc:
            self._error = short_message(exc.message, 200)
            self._retry_at = time.monotonic() + RETRY_SECS
            log.warning("kernel pool: cannot start a kernel: %s", self._error)
            return
        finally:
            self._starting -= 1
        self._error = None
        assert kernel.env is not None  # ipykernel in a pooled env
        self._ready.append(
            _Pooled(
                kernel,
                source,
                generation,
                cwd,
                launch_env,
                adoption_file,
                kernel.env,
                answered_at=time.monotonic(),
            )
        )
        log.info("kernel pool: %d/%d ready", len(self._ready), self.size())

    @staticmethod
    def _adoption_file(kernel: AcquiredKernel) -> Path:
        workspace = kernel.session.workspace
        assert workspace is not None  # a started local kernel has one
        return workspace.dir / "adoption.json"

    async def _warm_up(self, kernel: AcquiredKernel, adoption_file: Path) -> None:
        try:
            await asyncio.wait_for(warm_up(kernel.session, adoption_file), ADOPT_TIMEOUT_SECS)
        except (TimeoutError, KernelError) as exc:
            await self._discard_kernel(kernel)
            raise RuntimedError(f"a new kernel failed its warm-up: {exc}") from None

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await stop_task(self._task)
        ready, self._ready = self._ready, deque()
        await asyncio.gather(*(self._discard(p) for p in ready), return_exceptions=True)
