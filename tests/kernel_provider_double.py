"""A ``KernelProvider`` double: started ``KernelSession``s on ``kernel_doubles``'
FakeBackend (no process, no env), so that rooms' kernels run in-process."""

from __future__ import annotations

from pathlib import Path

from kernel_doubles import FakeBackend, fake_session
from runtimed.daemon.envs.resolver import ResolvedEnv
from runtimed.daemon.kernels.provider import AcquiredKernel, KernelRequest


class FakeKernelProvider:
    """Hands out started kernels on FakeBackends; ``env`` goes with each (None: as an
    installed kernelspec, which brings its own)."""

    def __init__(self, tmp_path: Path, env: ResolvedEnv | None = None) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.requests: list[KernelRequest] = []
        self.backends: list[FakeBackend] = []
        self.released: list[AcquiredKernel] = []

    async def acquire(self, request: KernelRequest) -> AcquiredKernel:
        self.requests.append(request)
        session, backend = fake_session(self.tmp_path, on_unrouted=request.on_unrouted)
        self.backends.append(backend)
        if request.on_state is not None:
            session.add_listener(request.on_state)
        await session.start()
        return AcquiredKernel(session, self.env)

    async def release(self, kernel: AcquiredKernel) -> None:
        self.released.append(kernel)
        await kernel.session.shutdown()

    async def release_env(self, env: ResolvedEnv) -> None:
        pass
