"""Where a client finds the daemon: a Unix socket, or a URL (``/ws``) and its token.

Every client takes ``socket_path`` or ``url=`` (and ``token=``); ``RUNTIMED_URL`` makes
the URL the default. The token comes from ``token=``, else ``RUNTIMED_TOKEN``, else the
file ``RUNTIMED_TOKEN_FILE`` names, else ``<cache dir>/http-token`` when the URL is on
this machine (the daemon writes it there). The token is read at each connect, so a
rotated token file is picked up by the next reconnect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtimed.paths import default_cache_dir, default_socket_path

#: The daemon's token file in its cache dir (``daemon/http/tokens.py`` writes it).
TOKEN_FILE_NAME = "http-token"


@dataclass(frozen=True)
class DaemonAddress:
    """A daemon's address: ``url`` (websocket) when set, else the Unix socket."""

    socket_path: Path | None = None
    url: str | None = None
    token: str | None = None
    token_file: Path | None = None

    @property
    def remote(self) -> bool:
        return self.url is not None

    def socket(self) -> Path:
        return self.socket_path or default_socket_path()

    def resolve_token(self) -> str | None:
        """The token to send (None: none found; the daemon then answers 401)."""
        if self.token:
            return self.token
        if env := os.environ.get("RUNTIMED_TOKEN", "").strip():
            return env
        named = self.token_file or _env_path("RUNTIMED_TOKEN_FILE")
        if named is not None:
            return _read(named)
        if self.url is not None and is_loopback(self.url):
            return _read(default_cache_dir() / TOKEN_FILE_NAME, missing_ok=True)
        return None

    def __str__(self) -> str:
        return self.url or str(self.socket())


AddressLike = str | Path | DaemonAddress | None


def daemon_address(
    target: AddressLike = None, url: str | None = None, token: str | None = None
) -> DaemonAddress:
    """The address a client was given: ``url=`` first, then a socket path, then
    ``RUNTIMED_URL``, then the default socket."""
    if isinstance(target, DaemonAddress):
        return target
    if url:
        return DaemonAddress(url=url, token=token)
    if target:
        return DaemonAddress(socket_path=Path(target).expanduser().absolute(), token=token)
    if env := os.environ.get("RUNTIMED_URL", "").strip():
        return DaemonAddress(url=env, token=token)
    return DaemonAddress(token=token)


def is_loopback(url: str) -> bool:
    # Imported here: only a URL needs them, and every client imports this module.
    import ipaddress
    import urllib.parse

    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _read(path: Path, missing_ok: bool = False) -> str | None:
    from runtimed.errors import RuntimedError

    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if missing_ok:
            return None
        raise RuntimedError(f"no token file at {path}", "no_token") from None
    except OSError as exc:
        raise RuntimedError(f"cannot read the token file {path}: {exc}", "no_token") from None
