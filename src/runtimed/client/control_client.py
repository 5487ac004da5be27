"""ControlClient: the pool (control) channel over a blocking socket, standard library only.

`runt ps`, `runt pool ping|status`, `runt rooms`, `runt history` and `runtimed status`
ask one question and print the answer; a Python process that starts them costs less than
importing asyncio, msgspec or pycrdt would. So this client speaks the same protocol as
``DaemonClient`` (preamble, JSON handshake, one JSON request and one JSON reply per
call, ``docs/protocol.md``) with ``socket`` and ``json`` alone, and answers with the
reply's plain JSON values: the fields of the protocol's Structs, as dicts.
``DaemonClient`` stays the typed API; the daemon's answers are the same bytes.

The version checks of a handshake (``daemon_version_note``, the outdated-daemon
warning) live here too, so the full client (``client/core.py``) and this one agree.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from runtimed.errors import DaemonNotRunningError, ProtocolError, RuntimedError
from runtimed.protocol.framing import LENGTH_PREFIX, PREAMBLE, PROTOCOL_VERSION, Channel
from runtimed.version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Protocol, Self

    class Frames(Protocol):
        def settimeout(self, timeout: float | None) -> None: ...
        def write_frame(self, payload: bytes) -> None: ...
        def read_frame(self) -> bytes | None: ...
        def close(self) -> None: ...


DEFAULT_TIMEOUT = 90.0
POOL_MAX_FRAME = int(Channel.POOL)


class OutdatedDaemonWarning(UserWarning):
    """The running daemon is another version than the installed package."""


_warned: set[str] = set()


def version_note(daemon_version: str, installed: str = __version__) -> str | None:
    """What to tell a user whose daemon runs another version than the one installed."""
    if not daemon_version or daemon_version == installed:
        return None
    return (
        f"runtimed {installed} is installed but the daemon runs {daemon_version}; "
        "`runt daemon restart` switches to the installed version (open notebooks are kept)"
    )


def warn_if_outdated(daemon_version: str, stacklevel: int = 4) -> None:
    """Once per process and daemon version: an upgrade is waiting for a restart."""
    note = version_note(daemon_version)
    if note is None or daemon_version in _warned:
        return
    _warned.add(daemon_version)
    import warnings

    warnings.warn(note, OutdatedDaemonWarning, stacklevel=stacklevel)


def check_handshake(reply: Any) -> dict[str, Any]:
    """The daemon's decoded handshake reply, or RuntimedError with its own message."""
    if not isinstance(reply, dict) or not reply.get("ok"):
        message = reply.get("message") or reply.get("error") if isinstance(reply, dict) else None
        code = reply.get("code", "error") if isinstance(reply, dict) else "error"
        raise RuntimedError(message or f"handshake refused: {reply!r}", code)
    daemon_version = str(reply.get("daemon_version", ""))
    if reply.get("protocol_version", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise RuntimedError(
            f"the daemon (runtimed {daemon_version}) speaks protocol "
            f"{reply.get('protocol_version')}, this client (runtimed {__version__}) protocol "
            f"{PROTOCOL_VERSION}; run `runt daemon restart` to start the installed version",
            "version_mismatch",
        )
    warn_if_outdated(daemon_version)
    return reply


def default_socket_path() -> str:
    """``runtimed.paths.default_socket_path()`` without pathlib and platformdirs on Linux
    (the XDG cache dir, as platformdirs computes it); elsewhere it asks paths.py."""
    if override := os.environ.get("RUNTIMED_SOCKET_PATH"):
        return os.path.abspath(os.path.expanduser(override))
    if cache := os.environ.get("RUNTIMED_CACHE_DIR"):
        return os.path.join(os.path.abspath(os.path.expanduser(cache)), "runtimed.sock")
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
        return os.path.join(os.path.abspath(base), "runt", "runtimed.sock")
    from runtimed.paths import default_socket_path as from_paths

    return str(from_paths())


class SocketFrames:
    """Length-prefixed frames over a blocking Unix socket (``BlockingFrameSocket``'s
    twin without the transport package's asyncio imports)."""

    def __init__(self, path: str, timeout: float | None) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(PREAMBLE)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonNotRunningError(path) from None
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._buf = bytearray()

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def write_frame(self, payload: bytes) -> None:
        self._sock.sendall(LENGTH_PREFIX.pack(len(payload)) + payload)

    def read_frame(self) -> bytes | None:
        if not self._fill(LENGTH_PREFIX.size):
            return None
        (length,) = LENGTH_PREFIX.unpack_from(self._buf)
        if length > POOL_MAX_FRAME:
            raise ProtocolError(
                f"frame of {length} bytes exceeds the {POOL_MAX_FRAME}-byte limit",
                "frame_too_large",
            )
        end = LENGTH_PREFIX.size + length
        if not self._fill(end):
            raise ProtocolError("connection closed inside a frame", "truncated_frame")
        frame = bytes(self._buf[LENGTH_PREFIX.size : end])
        del self._buf[:end]
        return frame

    def _fill(self, size: int) -> bool:
        while len(self._buf) < size:
            chunk = self._sock.recv(max(size - len(self._buf), 65536))
            if not chunk:
                if self._buf:
                    raise ProtocolError("connection closed inside a frame", "truncated_frame")
                return False
            self._buf.extend(chunk)
        return True

    def close(self) -> None:
        self._sock.close()


def _open_frames(socket_path: str | None, timeout: float | None, autostart: bool) -> Frames:
    url = os.environ.get("RUNTIMED_URL", "").strip()
    if url and not socket_path:  # a daemon over HTTP: the websocket transport (rare)
        from runtimed.client.daemon_address import daemon_address
        from runtimed.transport.ws_client import BlockingWebSocket

        token = daemon_address(url=url).resolve_token()
        return BlockingWebSocket.connect(url, token, POOL_MAX_FRAME, timeout)  # type: ignore[no-any-return]
    path = (
        os.path.abspath(os.path.expanduser(socket_path)) if socket_path else default_socket_path()
    )
    try:
        return SocketFrames(path, timeout)
    except DaemonNotRunningError:
        # autostart.autostart_enabled(), read here: that module imports pathlib and more.
        off = os.environ.get("RUNTIMED_NO_AUTOSTART", "").lower() in ("1", "true", "yes")
        if not autostart or off:
            raise
        from pathlib import Path

        from runtimed.client.autostart import ensure_daemon

        ensure_daemon(Path(path))
        return SocketFrames(path, timeout)


class ControlClient:
    """Blocking pool-channel client; replies are plain dicts. ``close()`` never stops the
    daemon. ``socket_path`` None: ``RUNTIMED_URL`` when set, else the default socket."""

    def __init__(
        self,
        socket_path: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        autostart: bool = True,
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.autostart = autostart
        self._frames: Frames | None = None

    def _connect(self) -> Frames:
        if self._frames is None:
            frames = _open_frames(self.socket_path, self.timeout, self.autostart)
            try:
                frames.write_frame(b'{"channel":"pool"}')
                check_handshake(_decode(frames.read_frame(), "the handshake"))
            except BaseException:
                frames.close()
                raise
            self._frames = frames
        return self._frames

    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send request ``kind`` (its ``type`` tag) with ``fields``; the reply, or
        RuntimedError with the daemon's message."""
        frames = self._connect()
        try:
            frames.settimeout(self.timeout)
            frames.write_frame(json.dumps({"type": kind, **fields}).encode())
            reply = _decode(frames.read_frame(), kind)
        except TimeoutError:
            self.close()
            raise RuntimedError(
                f"{kind} got no answer within {self.timeout} s", "timeout"
            ) from None
        except (OSError, ProtocolError):
            self.close()
            raise
        if reply.get("type") == "error":
            raise RuntimedError(str(reply.get("message")), str(reply.get("code", "error")))
        return reply

    def expect(self, kind: str, reply_type: str, **fields: Any) -> dict[str, Any]:
        reply = self.request(kind, **fields)
        if reply.get("type") != reply_type:
            raise RuntimedError(f"unexpected reply from the daemon: {reply!r}", "protocol_error")
        return reply

    def ping(self) -> dict[str, Any]:
        """``{"type": "pong", "protocol_version", "daemon_version"}``."""
        return self.expect("ping", "pong")

    def status(self) -> dict[str, Any]:
        """The StatusReply: ``pools`` (by name), ``kernels``, ``rooms``, ``uptime_secs``."""
        return self.expect("status", "status")

    def daemon_info(self) -> dict[str, Any]:
        return self.expect("get_daemon_info", "daemon_info")

    def list_rooms(self) -> list[dict[str, Any]]:
        return self.expect("list_rooms", "rooms")["rooms"]  # type: ignore[no-any-return]

    def list_runtimes(self, all: bool = False) -> list[dict[str, Any]]:
        return self.expect("list_runtimes", "runtimes", all=all)["runtimes"]  # type: ignore[no-any-return]

    def executions(
        self,
        notebook: str | None = None,
        runtime_id: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """History entries, newest first (``oldest_first`` for the reverse)."""
        reply = self.expect(
            "list_executions",
            "executions",
            notebook=notebook,
            runtime_id=runtime_id,
            limit=limit,
            oldest_first=oldest_first,
        )
        return reply["executions"]  # type: ignore[no-any-return]

    def close(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _decode(frame: bytes | None, what: str) -> dict[str, Any]:
    if frame is None:
        if what == "the handshake":
            raise ProtocolError("the daemon closed the connection during the handshake")
        raise ProtocolError("the daemon closed the connection before replying", "disconnected")
    try:
        value = json.loads(frame)
    except ValueError as exc:
        raise ProtocolError(f"unreadable reply to {what}: {exc}") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"unreadable reply to {what}: {value!r}")
    return value
