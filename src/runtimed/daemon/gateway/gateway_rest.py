"""GatewayRest: the kernel REST API of a Jupyter Kernel Gateway / Enterprise Gateway.

``/api/kernelspecs``, ``/api/kernels`` (start, list, get, interrupt, restart, delete) on
one aiohttp ``ClientSession``, and the channels websocket's connect. Every call ends
within ``request_timeout`` with an answer or a one-line :class:`GatewayError` that says
what is wrong (down, slow, token refused, not a gateway) and what to check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from runtimed.daemon.gateway.gateway_settings import GatewayError, GatewaySettings
from runtimed.protocol.framing import Channel

log = logging.getLogger(__name__)

#: The channels websocket framings, best first (``v1`` is binary, no JSON re-encoding).
V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
#: Kernel messages may be as big as the daemon's notebook frames (aiohttp's default cap
#: is 4 MiB, which a plot or a dataframe passes).
MAX_MESSAGE_BYTES = int(Channel.NOTEBOOK)
#: Websocket pings: a half-open connection (a gateway host gone) is noticed in ~2x this.
HEARTBEAT_SECS = 15.0


class GatewayRest:
    """REST calls to one gateway (``settings.url``). Close it when done."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP client, made on first use (it needs the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.settings.http_headers(),
                timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout),
                connector=aiohttp.TCPConnector(ssl=self.settings.ssl_context(), limit=0),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- calls ---------------------------------------------------------------------------

    async def kernelspecs(self) -> dict[str, Any]:
        """``{"default": name, "kernelspecs": {name: {"name", "spec": {...}}}}``."""
        answer = await self._json("GET", "kernelspecs")
        if not isinstance(answer, dict) or not isinstance(answer.get("kernelspecs"), dict):
            raise self._garbage("GET /api/kernelspecs", answer)
        return answer

    async def start_kernel(self, name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """``POST /api/kernels``: the new kernel's model (``id``, ``name``, ...)."""
        body: dict[str, Any] = {"name": name} if name else {}
        if env:
            body["env"] = env
        model = await self._json("POST", "kernels", body)
        if not isinstance(model, dict) or not isinstance(model.get("id"), str):
            raise self._garbage("POST /api/kernels", model)
        return model

    async def kernel(self, kernel_id: str) -> dict[str, Any] | None:
        """The kernel's model, or None when the gateway no longer knows it (404)."""
        model = await self._json("GET", f"kernels/{kernel_id}", missing_ok=True)
        if model is None or isinstance(model, dict):
            return model
        raise self._garbage(f"GET /api/kernels/{kernel_id}", model)

    async def kernels(self) -> list[dict[str, Any]]:
        answer = await self._json("GET", "kernels")
        if not isinstance(answer, list):
            raise self._garbage("GET /api/kernels", answer)
        return [k for k in answer if isinstance(k, dict)]

    async def interrupt(self, kernel_id: str) -> None:
        await self._json("POST", f"kernels/{kernel_id}/interrupt", {})

    async def restart(self, kernel_id: str) -> bool:
        """Restart in place; False when the gateway no longer knows the kernel."""
        answer = await self._json("POST", f"kernels/{kernel_id}/restart", {}, missing_ok=True)
        return answer is not None

    async def shutdown(self, kernel_id: str) -> None:
        """``DELETE``; a kernel the gateway no longer knows is already gone."""
        await self._json("DELETE", f"kernels/{kernel_id}", missing_ok=True)

    async def connect_channels(
        self, kernel_id: str, session_id: str, protocols: Sequence[str] = (V1_PROTOCOL,)
    ) -> aiohttp.ClientWebSocketResponse:
        """The kernel's channels websocket; the gateway picks the framing among
        ``protocols`` (none of them: the legacy JSON one), read it from ``ws.protocol``."""
        url = self.settings.channels_url(kernel_id, session_id)
        where = f"the channels websocket of kernel {kernel_id}"
        try:
            return await self.session.ws_connect(
                url,
                protocols=tuple(protocols),
                max_msg_size=MAX_MESSAGE_BYTES,
                heartbeat=HEARTBEAT_SECS,
                autoping=True,
                compress=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise self._status_error(where, exc.status, exc.message) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(where, exc) from None

    # --- plumbing ------------------------------------------------------------------------

    async def _json(
        self, method: str, path: str, body: Any = None, missing_ok: bool = False
    ) -> Any:
        where = f"{method} /api/{path}"
        try:
            async with self.session.request(method, self.settings.api(path), json=body) as reply:
                if reply.status == 404 and missing_ok:
                    return None
                if reply.status >= 400:
                    detail = (await reply.text())[:300]
                    raise self._status_error(where, reply.status, _reason(detail))
                if reply.status == 204:
                    return {}
                try:
                    return await reply.json(content_type=None)
                except ValueError:
                    raise self._garbage(where, (await reply.text())[:80]) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(where, exc) from None

    def _unreachable(self, where: str, exc: BaseException) -> GatewayError:
        url, timeout = self.settings.url, self.settings.request_timeout
        if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return GatewayError(
                f"the gateway at {url} did not answer {where} within {timeout:g} s "
                "(gateway.request_timeout); is it overloaded or hung?",
                "gateway_timeout",
            )
        reason = str(exc) or type(exc).__name__
        return GatewayError(
            f"cannot reach the gateway at {url} ({where}: {reason}); is it running, and is "
            "gateway.url right?",
            "gateway_unreachable",
        )

    def _status_error(self, where: str, status: int, detail: str) -> GatewayError:
        url = self.settings.url
        if status in (401, 403):
            return GatewayError(
                f"the gateway at {url} refused {where} ({status} {detail}); check "
                "gateway.token / gateway.token_file",
                "gateway_unauthorized",
            )
        return GatewayError(f"the gateway at {url} answered {where} with {status}: {detail}")

    def _garbage(self, where: str, answer: Any) -> GatewayError:
        return GatewayError(
            f"the gateway at {self.settings.url} answered {where} with something that is not "
            f"the Jupyter kernel API ({str(answer)[:80]!r}); is gateway.url a Jupyter Kernel "
            "or Enterprise Gateway?",
            "gateway_garbage",
        )


def _reason(body: str) -> str:
    """The ``message``/``reason`` of a Jupyter JSON error body, else its start."""
    import json

    try:
        answer = json.loads(body)
    except ValueError:
        return body.strip()[:200] or "no detail"
    if isinstance(answer, dict):
        return str(answer.get("message") or answer.get("reason") or answer)[:200]
    return str(answer)[:200]
