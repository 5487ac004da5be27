"""EnvPool: one state machine for every kind of prewarmed environment.

States of an env: building -> available -> taken (owned by a caller) -> returned or gone.
The pool keeps ``available + building`` at its target; failed builds back off
exponentially and the failure stays visible in ``status()`` until a build succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from runtimed.daemon.envs.build_records import BuildBackoff, InFlightBuild
from runtimed.daemon.envs.build_step import BuildFailure
from runtimed.daemon.envs.builder import EnvBuilder
from runtimed.daemon.envs.env_adoption import adopt_existing
from runtimed.daemon.envs.env_record import (
    clear_taken,
    env_dir_name,
    mark_taken,
    new_env_id,
    parse_env_dir_name,
    read_ready_marker,
    remove_env_dir,
    taken_at,
    write_ready_marker,
)
from runtimed.daemon.tasks import stop_task
from runtimed.errors import RuntimedError, short_message
from runtimed.protocol.control import PooledEnv, PoolError, PoolStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSettings:
    """How a pool behaves. ``target`` 0 disables the pool."""

    target: int = 3
    max_age_secs: float = 2 * 24 * 3600
    build_timeout_secs: float = 600.0
    take_timeout_secs: float = 60.0
    backoff_base_secs: float = 2.0
    backoff_max_secs: float = 300.0
    max_parallel_builds: int = 2
    #: Replenish this long after the last take (unless someone waits), so a take that is
    #: soon followed by a return does not start, then kill, a build.
    replenish_delay_secs: float = 0.5


@dataclass
class EnvPool:
    """A pool of ready environments of one type, built by ``builder`` under ``envs_dir``."""

    builder: EnvBuilder
    envs_dir: Path
    settings: PoolSettings = field(default_factory=PoolSettings)

    def __post_init__(self) -> None:
        self._available: deque[PooledEnv] = deque()
        self._builds: dict[str, InFlightBuild] = {}
        self._stale: deque[Path] = deque()
        self._waiters: deque[asyncio.Future[PooledEnv]] = deque()
        self._backoff = BuildBackoff()
        self._generation = 0
        self._wake = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._closed = False
        self._last_take = 0.0

    # --- lifecycle ------------------------------------------------------------------

    @property
    def env_type(self) -> str:
        return self.builder.env_type

    @property
    def generation(self) -> int:
        """Bumped by a flush or a new package set: envs of older generations are stale."""
        return self._generation

    async def start(self) -> None:
        """Adopt ready envs left on disk, clean the rest, and begin replenishing."""
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        adoption = await adopt_existing(
            self.envs_dir, self.builder, self.settings.target, self.settings.max_age_secs
        )
        self._available.extend(adoption.ready)
        self._stale.extend(adoption.stale)
        self._started.set()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"pool-{self.env_type}")

    async def close(self) -> None:
        """Stop building (in-flight builds are killed and removed); ready envs stay on disk."""
        self._closed = True
        if self._supervisor:
            await stop_task(self._supervisor)
            failed = None if self._supervisor.cancelled() else self._supervisor.exception()
            if failed is not None:
                log.error("%s pool supervisor failed", self.env_type, exc_info=failed)
        await self._cancel_builds()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

    # --- requests -------------------------------------------------------------------

    async def take(self, timeout: float | None = None) -> PooledEnv | None:
        """Hand one ready env to exactly one caller; wait up to ``timeout`` if none is ready.

        Returns None when no env became ready in time.
        """
        if self.settings.target <= 0 and not self._available:
            raise RuntimedError(
                f"the {self.env_type} pool is disabled (size 0); "
                f"start the daemon with --{self.env_type}-pool-size N",
                code="pool_disabled",
            )
        wait = self.settings.take_timeout_secs if timeout is None else timeout
        deadline = time.monotonic() + max(wait, 0.0)
        if not self._started.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._started.wait(), timeout=max(wait, 0.0))
            if not self._started.is_set():
                return None
        if self._available:
            return self._hand_out(self._available.popleft())
        if self._backoff.last is not None and not self._builds:
            # waiting would only wait for the next failure
            raise self._backoff.failing_error(self.env_type)
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        waiter: asyncio.Future[PooledEnv] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        try:
            await asyncio.wait({waiter}, timeout=left)
        except asyncio.CancelledError:
            self._drop_waiter(waiter)
            raise
        # Check the future itself, not wait()'s done set: an env handed to this waiter
        # after the timeout fired but before we resumed must not be lost.
        if waiter.done() and not waiter.cancelled():
            return waiter.result()
        self._drop_waiter(waiter)
        return None

    def _drop_waiter(self, waiter: asyncio.Future[PooledEnv]) -> None:
        """Forget a take that gave up; an env already handed to it goes back to the pool
        (left in a waiter nobody reads, it would stay marked taken for days)."""
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        if not waiter.done():
            waiter.cancel()
        elif not waiter.cancelled() and waiter.exception() is None:
            env = waiter.result()
            clear_taken(Path(env.venv_path))
            self._add_ready(env)

    async def give_back(self, venv_path: str) -> str:
        """Take back an unused env. Returns ``"returned"`` or ``"deleted"`` (pool was full)."""
        prefix = self._own_prefix(venv_path)
        env = read_ready_marker(prefix)
        if env is None or taken_at(prefix) is None:
            raise RuntimedError(f"{venv_path} is not an env this pool handed out", "not_found")
        if env.package_hash != self.builder.package_hash:
            await asyncio.to_thread(remove_env_dir, prefix)
            return "deleted"
        clear_taken(prefix)
        if len(self._available) >= self.settings.target:
            await asyncio.to_thread(remove_env_dir, prefix)
            return "deleted"
        self._add_ready(env)
        self._wake.set()  # the supervisor stops a build this env makes surplus
        return "returned"

    async def flush(self) -> None:
        """Discard every ready and in-flight env and rebuild from scratch."""
        self._generation += 1
        self._backoff = BuildBackoff()
        await self._cancel_builds()
        doomed = [Path(env.venv_path) for env in self._available]
        self._available.clear()
        await asyncio.gather(*(asyncio.to_thread(remove_env_dir, p) for p in doomed))
        self._wake.set()

    def reconfigure(self, builder: EnvBuilder | None = None, target: int | None = None) -> None:
        """Apply new settings without a restart: mismatched envs are replaced, then removed;
        a lower target trims ready envs; target 0 forgets the last failure."""
        if target is not None:
            self.settings = PoolSettings(**{**self.settings.__dict__, "target": target})
            if target == 0:
                self._backoff = BuildBackoff()
        if builder is not None and builder.package_hash != self.builder.package_hash:
            self.builder = builder
            self._generation += 1
            self._backoff = BuildBackoff()
            self._stale.extend(Path(env.venv_path) for env in self._available)
            self._available.clear()
        self._wake.set()

    def status(self) -> PoolStatus:
        failure = self._backoff.last
        error = None
        if failure is not None:
            error = PoolError(
                message=failure.message,
                step=failure.step,
                attempts=self._backoff.attempts,
                retry_at=self._backoff.retry_at,
                kind=failure.kind,
                spec=failure.spec,
            )
        return PoolStatus(
            env_type=self.builder.env_type,
            available=len(self._available),
            warming=len(self._builds),
            target=self.settings.target,
            packages=self.builder.packages,
            error=error,
        )

    # --- internals ------------------------------------------------------------------

    def _hand_out(self, env: PooledEnv) -> PooledEnv:
        mark_taken(Path(env.venv_path))
        self._last_take = time.monotonic()
        self._wake.set()
        return env

    def _add_ready(self, env: PooledEnv) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._hand_out(env))
                return
        self._available.append(env)

    def _own_prefix(self, venv_path: str) -> Path:
        prefix = Path(venv_path)
        if prefix.parent.resolve() != self.envs_dir.resolve():
            raise RuntimedError(f"{venv_path} is not inside {self.envs_dir}", "invalid_env")
        if parse_env_dir_name(prefix.name, self.builder.env_type) is None:
            raise RuntimedError(f"{venv_path} is not a {self.env_type} pool env", "invalid_env")
        return self.envs_dir / prefix.name

    async def _trim(self) -> None:
        """Ready envs and builds over the target go (a lowered pool size)."""
        surplus = len(self._available) - self.settings.target
        doomed = [Path(self._available.pop().venv_path) for _ in range(max(surplus, 0))]
        if doomed:
            log.info("%s pool: removing %d env(s) over its target", self.env_type, len(doomed))
            await asyncio.gather(*(asyncio.to_thread(remove_env_dir, p) for p in doomed))
        while (
            len(self._available) + len(self._builds) > self.settings.target + len(self._waiters)
            and self._builds
        ):
            await self._cancel_one_build()

    async def _supervise(self) -> None:
        while not self._closed:
            self._wake.clear()
            await self._trim()
            await self._expire_old()
            now = time.monotonic()
            wait_for = 600.0
            if self._available:  # wake when the oldest ready env reaches the max age
                oldest = min(env.created_at for env in self._available)
                wait_for = min(wait_for, oldest + self.settings.max_age_secs - time.time())
            settle = self._last_take + self.settings.replenish_delay_secs
            if self._backoff.last is not None and now < self._backoff.retry_mono:
                wait_for = min(wait_for, self._backoff.retry_mono - now)
            elif not self._waiters and now < settle:
                wait_for = min(wait_for, settle - now)
            else:
                self._start_builds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait_for, 0.01))

    def _start_builds(self) -> None:
        deficit = self.settings.target + len(self._waiters) - len(self._available)
        deficit -= len(self._builds)
        while deficit > 0 and len(self._builds) < self.settings.max_parallel_builds:
            env_id = new_env_id()
            build = InFlightBuild(
                env_id,
                self.envs_dir / env_dir_name(self.builder.env_type, env_id),
                self._generation,
            )
            build.task = asyncio.create_task(self._run_build(build), name=f"build-{env_id}")
            self._builds[env_id] = build
            deficit -= 1

    async def _run_build(self, build: InFlightBuild) -> None:
        started = time.monotonic()
        builder = self.builder
        try:
            env = await builder.build(build.prefix, build.env_id, self.settings.build_timeout_secs)
            write_ready_marker(env)
        except asyncio.CancelledError:
            try:  # still counted (and waited for by close) while its dir goes
                await asyncio.to_thread(remove_env_dir, build.prefix)
            finally:
                self._builds.pop(build.env_id, None)
            raise
        except Exception as exc:  # a builder bug must not kill the pool
            failure = exc if isinstance(exc, BuildFailure) else BuildFailure("build", repr(exc))
            self._builds.pop(build.env_id, None)
            await asyncio.to_thread(remove_env_dir, build.prefix)
            if build.generation == self._generation:
                self._build_failed(failure)
            self._wake.set()
            return
        self._builds.pop(build.env_id, None)
        if build.generation != self._generation or self._closed:
            await asyncio.to_thread(remove_env_dir, build.prefix)
            self._wake.set()
            return
        log.info(
            "%s env %s ready in %.2f s", self.env_type, build.env_id, time.monotonic() - started
        )
        self._backoff = BuildBackoff()
        self._add_ready(env)
        await self._drop_replaced_stale()
        self._wake.set()

    def _build_failed(self, failure: BuildFailure) -> None:
        """One backoff step (and one log line) per round of failed builds; whoever waits
        for an env hears of the failure at once."""
        delay = self._backoff.record(
            failure, self.settings.backoff_base_secs, self.settings.backoff_max_secs
        )
        if delay is not None:
            log.warning(
                "%s build failed at step %s (%s): %s; retry in %.0f s",
                self.env_type,
                failure.step,
                failure.kind,
                short_message(failure.message, 200),
                delay,
            )
        error = self._backoff.failing_error(self.env_type)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def _drop_replaced_stale(self) -> None:
        """Remove mismatched envs whose replacements are ready: one per new env, and all
        of them once the pool is back at its target (nothing else would replace them)."""
        if self._stale:
            await asyncio.to_thread(remove_env_dir, self._stale.popleft())
        if len(self._available) >= self.settings.target:
            while self._stale:
                await asyncio.to_thread(remove_env_dir, self._stale.popleft())

    async def _cancel_one_build(self) -> None:
        build = next(iter(self._builds.values()))
        if build.task is not None:
            await stop_task(build.task)
        # A task cancelled before it ran never reached its own clean-up.
        self._builds.pop(build.env_id, None)

    async def _cancel_builds(self) -> None:
        builds = list(self._builds.values())
        await asyncio.gather(*(stop_task(b.task) for b in builds if b.task is not None))
        for build in builds:
            self._builds.pop(build.env_id, None)

    async def _expire_old(self) -> None:
        cutoff = time.time() - self.settings.max_age_secs
        old = [env for env in self._available if env.created_at < cutoff]
        for env in old:
            self._available.remove(env)
            log.info("%s env %s is older than the max age; replacing it", self.env_type, env.env_id)
            await asyncio.to_thread(remove_env_dir, Path(env.venv_path))
        if old:
            self._wake.set()
