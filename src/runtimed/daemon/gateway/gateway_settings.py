"""GatewaySettings: where the Jupyter Kernel / Enterprise Gateway is and how to talk to it.

Read from the ``gateway.*`` settings each time a kernel starts (settings change while the
daemon runs): ``url`` (``http(s)://host:port[/base]``; null: no gateway), ``token`` or
``token_file`` (the file wins; re-read at each start, so a rotated token is picked up),
``headers`` (extra HTTP headers, for a proxy in front of the gateway),
``request_timeout`` (every REST call and websocket connect ends within it) and
``validate_cert``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runtimed.errors import RuntimedError

#: ``env_source`` prefix of a gateway kernel: ``gateway:<remote kernelspec>``.
GATEWAY_PREFIX = "gateway:"


class GatewayError(RuntimedError):
    """The gateway is unset, unreachable, slow, refuses us or answers garbage."""

    def __init__(self, message: str, code: str = "gateway_error") -> None:
        super().__init__(message, code)


@dataclass(frozen=True)
class GatewaySettings:
    """One snapshot of the ``gateway.*`` settings (the token already read)."""

    url: str
    token: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    request_timeout: float = 60.0
    validate_cert: bool = True

    @classmethod
    def read(cls, get: Callable[[str], Any]) -> GatewaySettings:
        """From settings (``get("gateway.url")`` ...); GatewayError when no url is set or
        the token file cannot be read."""
        url = get("gateway.url")
        if not url:
            raise GatewayError(
                "no gateway configured: set it with `runt config set gateway.url "
                "http://HOST:PORT` (and gateway.token or gateway.token_file)",
                "gateway_not_configured",
            )
        token = get("gateway.token")
        token_file = get("gateway.token_file")
        if token_file:
            try:
                token = Path(token_file).expanduser().read_text().strip()
            except OSError as exc:
                raise GatewayError(
                    f"cannot read gateway.token_file {token_file}: {exc.strerror or exc}"
                ) from None
        return cls(
            url=str(url).rstrip("/"),
            token=token or None,
            headers=dict(get("gateway.headers") or {}),
            request_timeout=float(get("gateway.request_timeout")),
            validate_cert=bool(get("gateway.validate_cert")),
        )

    def http_headers(self) -> dict[str, str]:
        """Every request's headers: the token (as Jupyter's ``token`` scheme, which both
        gateways accept) and the configured extras."""
        headers = dict(self.headers)
        if self.token:
            headers.setdefault("Authorization", f"token {self.token}")
        return headers

    def api(self, path: str) -> str:
        """The URL of ``/api/...`` ``path`` on the gateway."""
        return f"{self.url}/api/{path.lstrip('/')}"

    def channels_url(self, kernel_id: str, session_id: str) -> str:
        """The kernel's channels websocket (``ws(s)://``), for one client session."""
        secure = self.url.startswith("https://")
        base = "wss://" + self.url[8:] if secure else "ws://" + self.url[7:]
        return f"{base}/api/kernels/{quote(kernel_id, safe='')}/channels?session_id={session_id}"

    def ssl_context(self) -> ssl.SSLContext | bool:
        """aiohttp's ``ssl=``: the default checks, or none with validate_cert false."""
        return bool(self.validate_cert)


def gateway_kernelspec(env_source: str) -> str | None:
    """``gateway:python3`` -> ``python3``; None for any other source. A bare
    ``gateway:`` means the gateway's default kernelspec (empty string)."""
    if not env_source.startswith(GATEWAY_PREFIX):
        return None
    return env_source[len(GATEWAY_PREFIX) :].strip()


def notebook_gateway_kernelspec(metadata: Mapping[str, Any]) -> str | None:
    """``metadata.runt.gateway.kernelspec`` of a notebook (None when absent)."""
    runt = metadata.get("runt") if isinstance(metadata, Mapping) else None
    gateway = runt.get("gateway") if isinstance(runt, Mapping) else None
    name = gateway.get("kernelspec") if isinstance(gateway, Mapping) else None
    return name.strip() if isinstance(name, str) and name.strip() else None
