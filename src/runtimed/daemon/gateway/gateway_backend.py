"""GatewayKernelBackend: a kernel on a Jupyter Kernel / Enterprise Gateway.

The KernelBackend of a remote kernel: ``POST /api/kernels`` starts it and the channels
websocket is opened before ``launch`` returns (a refused websocket is a failed start, not
a hung one); interrupt, restart and shutdown are the REST calls. The kernel is dead when
the wire says so (``dead`` / auto-``restarting`` status, websocket gone for good) or the
gateway answers 404 for it (asked every ``POLL_SECS``). A restart of a kernel the gateway
no longer knows (it was restarted) starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp
from jupyter_client.session import Session

from runtimed.daemon.gateway.gateway_rest import V1_PROTOCOL, GatewayRest
from runtimed.daemon.gateway.gateway_settings import GatewayError
from runtimed.daemon.kernels.backend import InterruptMode
from runtimed.daemon.kernels.config import KernelConfig
from runtimed.daemon.kernels.errors import KernelError, KernelStartError
from runtimed.daemon.kernels.wire import KernelConnection
from runtimed.daemon.kernels.workspace import KernelWorkspace
from runtimed.daemon.tasks import stop_task

log = logging.getLogger(__name__)

#: How often the gateway is asked whether it still knows the kernel.
POLL_SECS = 5.0
#: The exit code a lost remote kernel reports (its real one is not known here).
LOST_EXIT_CODE = 1


class GatewayKernelBackend:
    """One remote kernel of kernelspec ``kernelspec`` ("" = the gateway's default)."""

    def __init__(
        self,
        rest: GatewayRest,
        kernelspec: str,
        *,
        env: Mapping[str, str] | None = None,
        protocols: Sequence[str] = (V1_PROTOCOL,),
    ) -> None:
        self.rest = rest
        self.kernelspec = kernelspec
        self.env = dict(env or {})
        self.protocols = tuple(protocols)
        #: The websocket's client session: the same after a reconnect, so the gateway
        #: replays what it buffered while we were away.
        self.session_id = uuid.uuid4().hex
        self.kernel_id: str | None = None
        self.framing: str | None = None
        self._exit: int | None = None
        self._reason = ""
        self._poller: asyncio.Task[None] | None = None

    @property
    def location(self) -> str:
        """Where the kernel runs, for `runt ps`: the gateway's URL of it."""
        return self.rest.settings.api(f"kernels/{self.kernel_id}")

    # --- lifecycle -----------------------------------------------------------------------

    async def launch(self, config: KernelConfig) -> KernelConnection:
        self._exit, self._reason = None, ""
        try:
            model = await self.rest.start_kernel(self.kernelspec, self.env or None)
            self.kernel_id = str(model["id"])
            return await self._connection()
        except GatewayError as exc:
            self._reason = exc.message
            raise KernelStartError(exc.message) from None

    async def restart(self) -> KernelConnection:
        kernel_id = self._require_kernel()
        await self._stop_poller()
        self._exit, self._reason = None, ""
        try:
            # A gateway that was restarted answers a restart of a kernel it lost with
            # 404 (Enterprise Gateway) or 500 (Kernel Gateway): ask first.
            known = await self.rest.kernel(kernel_id) is not None
            if not known or not await self.rest.restart(kernel_id):
                log.info("the gateway lost kernel %s; starting a new one", kernel_id)
                model = await self.rest.start_kernel(self.kernelspec, self.env or None)
                self.kernel_id = str(model["id"])
            return await self._connection()
        except GatewayError as exc:
            self._reason = exc.message
            raise KernelStartError(exc.message) from None

    async def _connection(self) -> KernelConnection:
        ws = await self._connect()
        self.framing = "v1" if ws.protocol == V1_PROTOCOL else "json"
        self._poller = asyncio.create_task(self._poll(), name="gateway-kernel-poll")
        info = {
            "kernel_id": self.kernel_id,
            "ws": ws,
            "connect": self._connect,
            "alive": self._alive,
            "on_lost": self.lost,
            "session_id": self.session_id,
            "reconnect_window": self.rest.settings.request_timeout,
        }
        return KernelConnection(info, Session(key=b"", session=self.session_id))

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        kernel_id = self._require_kernel()
        return await self.rest.connect_channels(kernel_id, self.session_id, self.protocols)

    async def _alive(self) -> bool:
        kernel_id = self.kernel_id
        return kernel_id is not None and await self.rest.kernel(kernel_id) is not None

    async def _poll(self) -> None:
        """A kernel culled or lost by the gateway while its websocket stays up."""
        while self._exit is None:
            await asyncio.sleep(POLL_SECS)
            with contextlib.suppress(GatewayError):  # the wire notices a gateway gone
                if not await self._alive():
                    self.lost("the kernel is gone: the gateway no longer knows it")

    def lost(self, reason: str) -> None:
        """The kernel is gone (told by the wire or the poller)."""
        if self._exit is None:
            self._exit, self._reason = LOST_EXIT_CODE, reason
            log.warning("gateway kernel %s: %s", self.kernel_id, reason)

    async def exit_code(self) -> int | None:
        return self._exit

    async def interrupt(self) -> None:
        try:
            await self.rest.interrupt(self._require_kernel())
        except GatewayError as exc:
            raise KernelError(exc.message, exc.code) from None

    async def shutdown(self, now: bool) -> None:
        await self._stop_poller()
        kernel_id, self.kernel_id = self.kernel_id, None
        if kernel_id is not None:
            try:
                await self.rest.shutdown(kernel_id)
            except GatewayError as exc:
                log.warning("could not shut down gateway kernel %s: %s", kernel_id, exc.message)

    async def _stop_poller(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None and poller is not asyncio.current_task():
            await stop_task(poller)

    def relocate(self, cwd: Path) -> None:
        """A remote kernel's directory is the gateway's business."""

    # --- what it is ----------------------------------------------------------------------

    def log_tail(self) -> str:
        return self._reason

    @property
    def launched(self) -> bool:
        return self.kernel_id is not None

    @property
    def exited(self) -> bool:
        return self._exit is not None

    @property
    def interrupt_mode(self) -> InterruptMode:
        return "signal"  # i.e. the backend's own means: POST .../interrupt

    @property
    def pid(self) -> int | None:
        return None

    @property
    def transport(self) -> str | None:
        return f"gateway/{self.framing}" if self.framing else None

    @property
    def workspace(self) -> KernelWorkspace | None:
        return None

    def _require_kernel(self) -> str:
        if self.kernel_id is None:
            raise KernelError("the gateway kernel was not launched")
        return self.kernel_id
