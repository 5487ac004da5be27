"""Where the HTTP server binds: ``--http-listen HOST:PORT|off``, setting ``http.listen``.

Loopback by default. Any other address carries the token over the network, so it needs
TLS (``--tls-cert/--tls-key``) or an explicit ``--insecure-no-tls``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtimed.errors import RuntimedError

DEFAULT_LISTEN = "127.0.0.1:0"
OFF = "off"
#: The usual loopback names, known without importing ipaddress (start time).
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class HttpListen:
    """The address to bind (port 0: a free port) and its TLS files."""

    host: str = "127.0.0.1"
    port: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Plain HTTP on a non-loopback address, on purpose (a warning is logged).
    insecure_no_tls: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def wildcard(self) -> bool:
        return self.host in ("0.0.0.0", "::", "")

    def check(self) -> None:
        """Refuse what would be unsafe or cannot work (RuntimedError ``invalid_listen``)."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise RuntimedError("--tls-cert and --tls-key go together", "invalid_listen")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not os.path.isfile(path):
                raise RuntimedError(f"no such TLS file: {path}", "invalid_listen")
        if not self.loopback and not self.tls and not self.insecure_no_tls:
            raise RuntimedError(
                f"the HTTP server would listen on {self.host}, beyond this machine, without "
                "TLS: give --tls-cert and --tls-key, or --insecure-no-tls if the network is "
                "private (the token then travels in clear), or use an SSH port forward",
                "invalid_listen",
            )


def listen_from(
    address: str, tls_cert: str | None, tls_key: str | None, insecure_no_tls: bool
) -> HttpListen | None:
    """The checked HttpListen of ``address`` (``HOST:PORT`` or ``off``: None) and the TLS
    flags; RuntimedError ``invalid_listen`` if it is malformed or would be unsafe."""
    parsed = parse_listen(address)
    if parsed is None:
        return None
    listen = HttpListen(parsed[0], parsed[1], tls_cert, tls_key, insecure_no_tls)
    listen.check()
    return listen


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as (host, port); ``off``: None."""
    text = text.strip()
    if text.lower() == OFF:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise RuntimedError(
            f"invalid HTTP listen address {text!r}: expected HOST:PORT (port 0: any free "
            "port) or off",
            "invalid_listen",
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise RuntimedError(f"invalid HTTP listen address {text!r}: no host", "invalid_listen")
    return host, int(port_text)


def format_host(host: str) -> str:
    """A host as it goes in a URL or a Host header (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host
