"""The HTTP token: a 256-bit secret in ``<cache dir>/http-token`` (0600), and what is
derived from it: the browser's session cookie and one-time login codes.

Both derivations are HMACs keyed by the token, so they need no state on disk and a
rotated token (``runtimed token rotate``) voids every cookie and code made with the old
one. The daemon re-reads the file when it changed (a stat per check), so a rotation
takes effect at once, without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

TOKEN_FILE_NAME = "http-token"
TOKEN_BYTES = 32
LOGIN_CODE_TTL_SECS = 60.0
COOKIE_NAME = "runtimed_session"


def token_file(cache_dir: Path) -> Path:
    """Where the daemon of ``cache_dir`` keeps its HTTP token."""
    return cache_dir / TOKEN_FILE_NAME


def write_new_token(path: Path) -> str:
    """Write a fresh token (64 hex chars) to ``path`` atomically, 0600; return it."""
    token = secrets.token_hex(TOKEN_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


def read_token(path: Path) -> str | None:
    """The token in ``path``, or None when there is no usable one."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) == 2 * TOKEN_BYTES and _is_hex(text) else None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _mac(token: str, purpose: str, message: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{message}".encode(), hashlib.sha256).hexdigest()


def mint_login_code(token: str, ttl_secs: float = LOGIN_CODE_TTL_SECS) -> str:
    """A login code valid ``ttl_secs`` and once: ``<expiry>.<nonce>.<mac>``. Anyone who
    can read the token file can mint one (``runtimed token login-url``)."""
    expires = int(time.time() + ttl_secs)
    nonce = secrets.token_hex(16)
    return f"{expires}.{nonce}.{_mac(token, 'login', f'{expires}.{nonce}')}"


class HttpTokens:
    """The daemon's view of the token file: checks, cookies, login codes."""

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self._token = token
        self._stamp = _stamp(path)
        #: Login nonces already redeemed, with their expiry (pruned as they expire).
        self._redeemed: dict[str, float] = {}

    @classmethod
    def load_or_create(cls, path: Path) -> HttpTokens:
        """The token of ``path``; a new one written there if it has none."""
        token = read_token(path)
        if token is None:
            token = write_new_token(path)
        else:
            path.chmod(0o600)
        return cls(path, token)

    def check(self, candidate: str) -> bool:
        """Constant-time: is ``candidate`` the token (re-reading a rotated file)?"""
        return self._matches(lambda token: hmac.compare_digest(candidate, token))

    def new_cookie(self) -> str:
        """A session cookie value for a browser that logged in."""
        nonce = secrets.token_hex(16)
        return f"{nonce}.{_mac(self._token, 'session', nonce)}"

    def check_cookie(self, value: str) -> bool:
        nonce, _, mac = value.partition(".")
        if not nonce or not mac:
            return False
        return self._matches(lambda token: hmac.compare_digest(mac, _mac(token, "session", nonce)))

    def redeem_login_code(self, code: str) -> bool:
        """True once for a code minted with the token and not expired, then False."""
        parts = code.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return False
        expires_text, nonce, mac = parts
        now = time.time()
        expires = int(expires_text)
        self._redeemed = {n: t for n, t in self._redeemed.items() if t >= now}
        # A code claiming a longer life than any minted here is not one of ours.
        if not now <= expires <= now + LOGIN_CODE_TTL_SECS + 1 or nonce in self._redeemed:
            return False
        message = f"{expires_text}.{nonce}"
        if not self._matches(lambda token: hmac.compare_digest(mac, _mac(token, "login", message))):
            return False
        self._redeemed[nonce] = float(expires)
        return True

    def _matches(self, test: Callable[[str], bool]) -> bool:
        # A stat per check (microseconds): a rotation revokes the old token at once.
        self._reload()
        return test(self._token)

    def _reload(self) -> None:
        """Re-read the file if it changed since last read (a removed or damaged file
        keeps the token in force: a bad edit must not lock every client out)."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        token = read_token(self.path)
        if token is not None:
            self._token = token


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
