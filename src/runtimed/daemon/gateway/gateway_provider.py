"""GatewayKernelProvider: kernels on a Jupyter Kernel / Enterprise Gateway.

A ``KernelProvider`` in front of the local one (the ``KernelPool``): a request whose
``env_source`` is ``gateway:<kernelspec>`` (``runt start gateway:python3``,
``launch_kernel(env_source=...)``), or ``auto`` for a notebook whose metadata names
``runt.gateway.kernelspec``, gets a kernel on the gateway of the ``gateway.*`` settings;
every other request goes to ``inner`` unchanged. The kernel is a ``KernelSession`` over a
:class:`GatewayKernelBackend` and a :class:`GatewayWire`: routing, outputs, blobs, history
and the queue are those of every kernel. A lost remote kernel is started again by the
next run (``AcquiredKernel.revive``).
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec

from runtimed.daemon.envs.resolver import ResolvedEnv
from runtimed.daemon.gateway.gateway_backend import GatewayKernelBackend
from runtimed.daemon.gateway.gateway_pool import GatewayKernelPool
from runtimed.daemon.gateway.gateway_rest import GatewayRest
from runtimed.daemon.gateway.gateway_settings import (
    GATEWAY_PREFIX,
    GatewayError,
    GatewaySettings,
    gateway_kernelspec,
    notebook_gateway_kernelspec,
)
from runtimed.daemon.gateway.gateway_wire import gateway_wire
from runtimed.daemon.kernels.config import KernelConfig
from runtimed.daemon.kernels.kernel_session import KernelSession
from runtimed.daemon.kernels.provider import AcquiredKernel, KernelProvider, KernelRequest

log = logging.getLogger(__name__)


def gateway_request(request: KernelRequest) -> str | None:
    """The remote kernelspec a request asks for ("" = the gateway's default), or None
    when it is not for the gateway."""
    name = gateway_kernelspec(request.env_source)
    if name is None and request.env_source == "auto" and request.kernel.spec is None:
        name = notebook_gateway_kernelspec(request.metadata)
    return name


class GatewayKernelProvider:
    """Gateway kernels for ``gateway:`` requests, ``inner`` for the rest."""

    def __init__(
        self,
        inner: KernelProvider,
        setting: Callable[[str], Any],
        runtime_dir: Path,
        ipython_dir: Path,
        pool_size: Callable[[], int] = lambda: 0,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.inner = inner
        self.setting = setting
        self.runtime_dir = runtime_dir
        self.ipython_dir = ipython_dir
        self._rest: GatewayRest | None = None
        self._retired: list[GatewayRest] = []
        self._ours: set[int] = set()
        self.pool = GatewayKernelPool(self, pool_size, busy)

    # --- the gateway ---------------------------------------------------------------------

    def rest(self) -> GatewayRest:
        """The REST client of the current settings (a new one when they changed; the old
        one stays open for the kernels that use it)."""
        settings = GatewaySettings.read(self.setting)
        if self._rest is None or self._rest.settings != settings:
            if self._rest is not None:
                self._retired.append(self._rest)
            self._rest = GatewayRest(settings)
        return self._rest

    def configured(self) -> bool:
        return bool(self.setting("gateway.url"))

    async def resolve_kernelspec(self, rest: GatewayRest, name: str) -> tuple[str, dict[str, Any]]:
        """The kernelspec's name and spec on the gateway (its default for ""); a name it
        lacks is a GatewayError listing what it has."""
        answer = await rest.kernelspecs()
        specs: dict[str, Any] = answer["kernelspecs"]
        name = name or str(answer.get("default") or "")
        found = specs.get(name)
        if not isinstance(found, dict):
            have = ", ".join(sorted(specs)) or "none"
            raise GatewayError(
                f"the gateway at {rest.settings.url} has no kernelspec {name!r} "
                f"(it has: {have}); use env_source gateway:<one of them>",
                "unknown_kernel",
            )
        spec = found.get("spec")
        return name, spec if isinstance(spec, dict) else {}

    # --- the provider --------------------------------------------------------------------

    async def acquire(self, request: KernelRequest) -> AcquiredKernel:
        name = gateway_request(request)
        if name is None:
            return await self.inner.acquire(request)
        pooled = await self.pool.take(name, request)
        if pooled is not None:
            return pooled
        return await self.start(name, request)

    async def start(self, name: str, request: KernelRequest) -> AcquiredKernel:
        """A new kernel of kernelspec ``name`` on the gateway."""
        rest = self.rest()
        name, spec = await self.resolve_kernelspec(rest, name)
        config = KernelConfig(
            python_path="",
            cwd=request.cwd,
            runtime_dir=self.runtime_dir,
            ipython_dir=self.ipython_dir,
            language=str(spec.get("language") or "python").lower(),
            kernel_name=name,
            display_name=str(spec.get("display_name") or name),
            # A kernelspec of its own: the session checks no local language support.
            spec=KernelSpec(
                argv=list(spec.get("argv") or ["(remote)"]),
                display_name=str(spec.get("display_name") or name),
                language=str(spec.get("language") or "python"),
            ),
            parent_death_guard=False,
            startup_timeout=max(60.0, rest.settings.request_timeout),
        )
        backend = GatewayKernelBackend(rest, name, env={"KERNEL_USERNAME": _username()})
        session = KernelSession(
            config, on_unrouted=request.on_unrouted, backend=backend, wire=gateway_wire
        )
        if request.on_state is not None:
            session.add_listener(request.on_state)
        await session.start()
        self._ours.add(id(session))
        log.info("gateway kernel %s (%s) at %s", backend.kernel_id, name, rest.settings.url)
        return AcquiredKernel(
            session, None, source=GATEWAY_PREFIX + name, location=backend.location, revive=True
        )

    async def release(self, kernel: AcquiredKernel) -> None:
        if id(kernel.session) in self._ours:
            self._ours.discard(id(kernel.session))
            await kernel.session.shutdown()
            return
        await self.inner.release(kernel)

    async def release_env(self, env: ResolvedEnv) -> None:
        await self.inner.release_env(env)

    def start_pool(self) -> None:
        self.pool.start()

    async def close(self) -> None:
        await self.pool.close()
        for rest in [*self._retired, *([self._rest] if self._rest else [])]:
            await rest.close()


def _username() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "runtimed"
