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

from runtimed.daemon.envs.build_step import BuildFailure
from runtimed.daemon.envs.builder import EnvBuilder
from runtimed.daemon.envs.env_record import (
    clear_taken,
    env_dir_name,
    mark_taken,
    new_env_id,
    parse_env_dir_name,
    python_runs,
    read_ready_marker,
    remove_env_dir,
    taken_at,
    write_ready_marker,
)
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
class _Backoff:
    attempts: int = 0
    last: BuildFailure | None = None
    retry_at: float = 0.0  # wall clock, for display
    retry_mono: float = 0.0

    def record(self, failure: BuildFailure, settings: PoolSettings) -> float:
        self.attempts += 1
        self.last = failure
        delay = settings.backoff_base_secs * 2.0 ** (self.attempts - 1)
        delay = min(delay, settings.backoff_max_secs)
        self.retry_mono = time.monotonic() + delay
        self.retry_at = time.time() + delay
        return delay


@dataclass
class _Build:
    env_id: str
    prefix: Path
    generation: int
    task: asyncio.Task[None] | None = None


@dataclass
class EnvPool:
    """A pool of ready environments of one type, built by ``builder`` under ``envs_dir``."""

    builder: EnvBuilder
    envs_dir: Path
    settings: PoolSettings = field(default_factory=PoolSettings)

    def __post_init__(self) -> None:
        self._available: deque[PooledEnv] = deque()
        self._builds: dict[str, _Build] = {}
        self._stale: deque[Path] = deque()
        self._waiters: deque[asyncio.Future[PooledEnv]] = deque()
        self._backoff = _Backoff()
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
        await self._adopt_existing()
        self._started.set()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"pool-{self.env_type}")

    async def close(self) -> None:
        """Stop building (in-flight builds are killed and removed); ready envs stay on disk."""
        self._closed = True
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
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
            raise self._failing_error()  # waiting would only wait for the next failure
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        waiter: asyncio.Future[PooledEnv] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await asyncio.wait({waiter}, timeout=left)
        # Check the future itself, not wait()'s done set: an env handed to this waiter
        # after the timeout fired but before we resumed must not be lost.
        if waiter.done() and not waiter.cancelled():
            return waiter.result()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        waiter.cancel()
        return None

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
        if len(self._available) + len(self._builds) >= self.settings.target:
            await self._cancel_one_build()
        self._add_ready(env)
        return "returned"

    async def flush(self) -> None:
        """Discard every ready and in-flight env and rebuild from scratch."""
        self._generation += 1
        self._backoff = _Backoff()
        await self._cancel_builds()
        doomed = [Path(env.venv_path) for env in self._available]
        self._available.clear()
        await asyncio.gather(*(asyncio.to_thread(remove_env_dir, p) for p in doomed))
        self._wake.set()

    def _failing_error(self) -> RuntimedError:
        failure = self._backoff.last
        assert failure is not None
        return RuntimedError(
            f"the {self.env_type} pool cannot build envs: its last build failed at step "
            f"'{failure.step}' ({failure.kind}): {_gist(failure.message)}; "
            "see `runt pool status`",
            code="pool_failing",
        )

    def reconfigure(self, builder: EnvBuilder | None = None, target: int | None = None) -> None:
        """Apply new settings without a restart: mismatched envs are replaced, then removed;
        a lower target trims ready envs; target 0 forgets the last failure."""
        if target is not None:
            self.settings = PoolSettings(**{**self.settings.__dict__, "target": target})
            if target == 0:
                self._backoff = _Backoff()
        if builder is not None and builder.package_hash != self.builder.package_hash:
            self.builder = builder
            self._generation += 1
            self._backoff = _Backoff()
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
            build = _Build(
                env_id,
                self.envs_dir / env_dir_name(self.builder.env_type, env_id),
                self._generation,
            )
            build.task = asyncio.create_task(self._run_build(build), name=f"build-{env_id}")
            self._builds[env_id] = build
            deficit -= 1

    async def _run_build(self, build: _Build) -> None:
        started = time.monotonic()
        builder = self.builder
        try:
            env = await builder.build(build.prefix, build.env_id, self.settings.build_timeout_secs)
            write_ready_marker(env)
        except asyncio.CancelledError:
            self._builds.pop(build.env_id, None)
            await asyncio.to_thread(remove_env_dir, build.prefix)
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
        self._backoff = _Backoff()
        self._add_ready(env)
        await self._drop_replaced_stale()
        self._wake.set()

    def _build_failed(self, failure: BuildFailure) -> None:
        """One backoff step (and one log line) per round of failed builds; whoever waits
        for an env hears of the failure at once."""
        if time.monotonic() < self._backoff.retry_mono:  # a parallel build of this round
            self._backoff.last = failure
        else:
            delay = self._backoff.record(failure, self.settings)
            log.warning(
                "%s build failed at step %s (%s): %s; retry in %.0f s",
                self.env_type,
                failure.step,
                failure.kind,
                short_message(failure.message, 200),
                delay,
            )
        error = self._failing_error()
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
        for build in list(self._builds.values()):
            if build.task is not None:
                build.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await build.task
                return

    async def _cancel_builds(self) -> None:
        tasks = [b.task for b in self._builds.values() if b.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _expire_old(self) -> None:
        cutoff = time.time() - self.settings.max_age_secs
        old = [env for env in self._available if env.created_at < cutoff]
        for env in old:
            self._available.remove(env)
            log.info("%s env %s is older than the max age; replacing it", self.env_type, env.env_id)
            await asyncio.to_thread(remove_env_dir, Path(env.venv_path))
        if old:
            self._wake.set()

    async def _adopt_existing(self) -> None:
        candidates: list[tuple[Path, PooledEnv]] = []
        now = time.time()
        for prefix in sorted(self.envs_dir.iterdir()):
            if not prefix.name.startswith(f"runtimed-{self.builder.env_type}-"):
                continue
            verdict = self._classify(prefix, now)
            if isinstance(verdict, PooledEnv):
                candidates.append((prefix, verdict))
            elif verdict == "stale":
                self._stale.append(prefix)
            elif verdict == "remove":
                log.info("removing %s (half-built, orphaned or too old)", prefix.name)
                await asyncio.to_thread(remove_env_dir, prefix)
        runs = await asyncio.gather(*(python_runs(env.python_path) for _, env in candidates))
        for (prefix, env), ok in zip(candidates, runs, strict=True):
            if ok:
                self._available.append(env)
            else:
                log.info("removing %s: its python no longer runs", prefix.name)
                await asyncio.to_thread(remove_env_dir, prefix)
        while len(self._available) > self.settings.target:
            await asyncio.to_thread(remove_env_dir, Path(self._available.pop().venv_path))
        if self.settings.target <= 0:  # no replacement will come: drop mismatched envs now
            while self._stale:
                await asyncio.to_thread(remove_env_dir, self._stale.popleft())
        log.info(
            "%s pool: reused %d ready env(s), %d stale",
            self.env_type,
            len(self._available),
            len(self._stale),
        )

    def _classify(self, prefix: Path, now: float) -> PooledEnv | str:
        """A reusable env, or what to do with the directory: keep / stale / remove."""
        if parse_env_dir_name(prefix.name, self.builder.env_type) is None:
            return "remove"
        taken = taken_at(prefix)
        if taken is not None:  # someone owns it; collect it only once abandoned
            return "remove" if now - taken > self.settings.max_age_secs else "keep"
        env = read_ready_marker(prefix)
        if env is None or env.venv_path != str(prefix):
            return "remove"
        if now - env.created_at > self.settings.max_age_secs:
            return "remove"
        if env.package_hash != self.builder.package_hash:
            return "stale"
        return env


def _gist(message: str, lines: int = 3, width: int = 300) -> str:
    """The last few lines of a tool's output on one line: where the cause usually is."""
    tail = [line.strip() for line in message.strip().splitlines() if line.strip()][-lines:]
    text = " / ".join(tail)
    return text if len(text) <= width else short_message(text, width)
