"""KernelProvider: where a room's kernel comes from.

``LocalKernelProvider`` resolves an env (pool, inline, pyproject) and launches ipykernel
in it, or runs an installed kernelspec with its own argv (no env). A pool of started
kernels and remote kernels are other providers: a room asks for a kernel and gets a
started ``KernelSession`` and the env it runs in.
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
from runtimed.daemon.kernels.installed import PYTHON, KernelChoice
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
    #: ipykernel in an env (the default), or an installed kernelspec.
    kernel: KernelChoice = PYTHON
    #: The source of the first code cell (a PEP 723 ``# /// script`` block is read there).
    first_code_cell: str | None = None


@dataclass(frozen=True)
class AcquiredKernel:
    """A started kernel and the env it runs in (None for an installed kernelspec, which
    brings its own); ``release`` it when done."""

    session: KernelSession
    env: ResolvedEnv | None
    #: Set by providers of kernels that run elsewhere (``gateway:<kernelspec>``).
    source: str | None = None
    #: Where a kernel that runs elsewhere is (its gateway URL), for `runt ps`.
    location: str | None = None
    #: A dead kernel is started again by the next run (remote kernels lost with their
    #: gateway or websocket), instead of asking for a restart.
    revive: bool = False

    @property
    def env_source(self) -> str:
        """``uv:prewarmed`` ..., ``kernelspec:<name>``, or the provider's ``source``."""
        if self.source is not None:
            return self.source
        if self.env is None:
            return f"kernelspec:{self.session.config.kernel_name}"
        return self.env.env_source


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
        if request.kernel.spec is not None:
            return await self._installed(request)
        env = await self.resolver.resolve(
            request.env_source, request.metadata, request.notebook_path, request.first_code_cell
        )
        if request.on_launching is not None:
            request.on_launching(env)
        request.cwd.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = KernelConfig.for_env(
            env.env, cwd=request.cwd, runtime_dir=self.runtime_dir, ipython_dir=self.ipython_dir
        )
        try:
            session = await self._start(config, request)
        except KernelError:
            await self.resolver.release(env)
            raise
        return AcquiredKernel(session, env)

    async def _installed(self, request: KernelRequest) -> AcquiredKernel:
        choice = request.kernel
        request.cwd.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = KernelConfig(
            python_path="",
            cwd=request.cwd,
            runtime_dir=self.runtime_dir,
            ipython_dir=self.ipython_dir,
            language=choice.language,
            kernel_name=choice.name,
            display_name=choice.display_name,
            spec=choice.spec,
        )
        return AcquiredKernel(await self._start(config, request), None)

    @staticmethod
    async def _start(config: KernelConfig, request: KernelRequest) -> KernelSession:
        session = KernelSession(config, on_unrouted=request.on_unrouted)
        if request.on_state is not None:
            session.add_listener(request.on_state)
        await session.start()
        return session

    async def release(self, kernel: AcquiredKernel) -> None:
        try:
            await kernel.session.shutdown()
        finally:
            if kernel.env is not None:
                await self.resolver.release(kernel.env)

    async def release_env(self, env: ResolvedEnv) -> None:
        await self.resolver.release(env)
