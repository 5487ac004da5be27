"""KernelProvider: where a room's kernel comes from.

Today's ``LocalKernelProvider`` resolves an env (pool, inline, pyproject) and launches
ipykernel in it. A pool of started kernels and remote kernels are other providers: a
room asks for a kernel and gets a started ``KernelSession`` and the env it runs in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runtimed.daemon.envs.resolver import EnvResolver, ResolvedEnv
from runtimed.daemon.kernels.config import KernelConfig
from runtimed.daemon.kernels.errors import KernelError
from runtimed.daemon.kernels.execution import MessageCallback
from runtimed.daemon.kernels.kernel_session import KernelSession
from runtimed.daemon.kernels.lifecycle import KernelState


@dataclass(frozen=True)
class KernelRequest:
    """What a room asks of a provider."""

    env_source: str
    #: The notebook's metadata (inline dependencies, kernelspec).
    metadata: dict[str, Any]
    notebook_path: str | None
    #: The kernel's working directory: the notebook's, or a private one for untitled.
    cwd: Path
    on_unrouted: MessageCallback | None = None
    #: Told the resolved env source once the env is ready and the kernel is launching.
    on_launching: Callable[[ResolvedEnv], None] | None = None
    #: Told every state change of the kernel while it starts.
    on_state: Callable[[KernelState], None] | None = None


@dataclass(frozen=True)
class AcquiredKernel:
    """A started kernel and the env it runs in; ``release`` it when done."""

    session: KernelSession
    env: ResolvedEnv


class KernelProvider(Protocol):
    async def acquire(self, request: KernelRequest) -> AcquiredKernel:
        """A started kernel; RuntimedError (or KernelError) says why there is none."""

    async def release(self, kernel: AcquiredKernel) -> None:
        """Shut the kernel down and give its env back."""

    async def release_env(self, env: ResolvedEnv) -> None:
        """Give back an env whose kernel never started or already stopped."""


class LocalKernelProvider:
    """ipykernel processes on this machine, in envs from the ``EnvResolver``."""

    def __init__(self, resolver: EnvResolver, runtime_dir: Path, ipython_dir: Path) -> None:
        self.resolver = resolver
        self.runtime_dir = runtime_dir
        self.ipython_dir = ipython_dir

    async def acquire(self, request: KernelRequest) -> AcquiredKernel:
        env = await self.resolver.resolve(
            request.env_source, request.metadata, request.notebook_path
        )
        if request.on_launching is not None:
            request.on_launching(env)
        request.cwd.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = KernelConfig.for_env(
            env.env, cwd=request.cwd, runtime_dir=self.runtime_dir, ipython_dir=self.ipython_dir
        )
        session = KernelSession(config, on_unrouted=request.on_unrouted)
        if request.on_state is not None:
            session.add_listener(request.on_state)
        try:
            await session.start()
        except KernelError:
            await self.resolver.release(env)
            raise
        return AcquiredKernel(session, env)

    async def release(self, kernel: AcquiredKernel) -> None:
        try:
            await kernel.session.shutdown()
        finally:
            await self.resolver.release(kernel.env)

    async def release_env(self, env: ResolvedEnv) -> None:
        await self.resolver.release(env)
