"""GatewayKernelPool: started, idle kernels on the gateway (``kernel_pool.gateway_size``).

A remote kernel takes from ~0.5 s (a Kernel Gateway on the same network) to minutes (an
Enterprise Gateway pulling a kernel image onto a Kubernetes node). The pool keeps
``size`` kernels of the gateway's default kernelspec started; a request for
``gateway:`` or ``gateway:<that kernelspec>`` takes one if it still answers. Each is
handed out once. Refills start one at a time, only while no cell runs in the daemon;
after a failure (gateway down) the next try waits ``RETRY_SECS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runtimed.daemon.kernels.errors import KernelError
from runtimed.daemon.kernels.lifecycle import KernelLifecycle
from runtimed.daemon.kernels.provider import AcquiredKernel, KernelRequest
from runtimed.daemon.tasks import stop_task
from runtimed.errors import RuntimedError, short_message

if TYPE_CHECKING:
    from runtimed.daemon.gateway.gateway_provider import GatewayKernelProvider

log = logging.getLogger(__name__)

RETRY_SECS = 30.0
PING_SECS = 5.0
REFILL_DELAY_SECS = 1.0


class GatewayKernelPool:
    """Idle kernels of the gateway's default kernelspec, for ``provider``."""

    def __init__(
        self,
        provider: GatewayKernelProvider,
        size: Callable[[], int],
        busy: Callable[[], bool],
    ) -> None:
        self.provider = provider
        self.size = size
        self.busy = busy
        self._ready: deque[AcquiredKernel] = deque()
        self._kernelspec: str | None = None
        self._url: str | None = None
        self.error: str | None = None
        self._retry_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> int:
        return len(self._ready)

    async def take(self, name: str, request: KernelRequest) -> AcquiredKernel | None:
        """A pooled kernel for a request of kernelspec ``name``, if one fits."""
        self._wake.set()
        while self._ready and name in ("", self._kernelspec) and self._same_gateway():
            kernel = self._ready.popleft()
            session = kernel.session
            try:
                if session.lifecycle is not KernelLifecycle.RUNNING:
                    raise KernelError("it died while waiting")
                await session.ping(PING_SECS)
            except KernelError as exc:
                log.info("a pooled gateway kernel is unusable (%s); using another", exc)
                await self._discard(kernel)
                continue
            session.set_unrouted_handler(request.on_unrouted)
            if request.on_state is not None:
                session.add_listener(request.on_state)
            return kernel
        return None

    def _same_gateway(self) -> bool:
        return self.provider.configured() and self.provider.setting("gateway.url") == self._url

    # --- refilling -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="gateway-kernel-pool")

    def wake(self) -> None:
        self._wake.set()

    async def _supervise(self) -> None:
        quiet_until = 0.0
        while True:
            self._wake.clear()
            if not self._same_gateway():
                await self._drain()
            now = time.monotonic()
            if self.busy():
                quiet_until = now + REFILL_DELAY_SECS
            wanted = self.provider.configured() and len(self._ready) < self.size()
            if wanted and now >= max(quiet_until, self._retry_at):
                await self._start_one()
                continue
            while len(self._ready) > self.size():
                await self._discard(self._ready.pop())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    async def _start_one(self) -> None:
        url = self.provider.setting("gateway.url")
        cwd = Path(tempfile.gettempdir())
        request = KernelRequest(env_source="gateway:", metadata={}, notebook_path=None, cwd=cwd)
        try:
            kernel = await self.provider.start("", request)
        except RuntimedError as exc:
            self.error = short_message(exc.message, 200)
            self._retry_at = time.monotonic() + RETRY_SECS
            log.warning("gateway kernel pool: cannot start a kernel: %s", self.error)
            return
        self.error = None
        if url != self._url:
            await self._drain()
            self._url = url
        self._kernelspec = kernel.session.config.kernel_name
        self._ready.append(kernel)
        log.info("gateway kernel pool: %d/%d ready", len(self._ready), self.size())

    async def _drain(self) -> None:
        ready, self._ready = self._ready, deque()
        for kernel in ready:
            await self._discard(kernel)

    async def _discard(self, kernel: AcquiredKernel) -> None:
        with contextlib.suppress(Exception):
            await self.provider.release(kernel)

    async def close(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
        await self._drain()
