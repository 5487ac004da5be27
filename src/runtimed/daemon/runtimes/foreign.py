"""Kernels in Jupyter's runtime dir that the daemon does not own (`runt ps --all`).

Each connection file is probed with a kernel_info request, all at once, each bounded by
``timeout``: a kernel that does not answer is shown as dead (its file is stale).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from runtimed.protocol.runtimes import RuntimeInfo

#: At most this many connection files are probed (newest first).
MAX_PROBES = 32


def runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


async def foreign_kernels(ours: set[str], timeout: float = 1.0) -> list[RuntimeInfo]:
    """Every ``kernel-*.json`` in Jupyter's runtime dir not in ``ours``, probed."""
    directory = runtime_dir()
    try:
        files = sorted(directory.glob("kernel-*.json"), key=_mtime, reverse=True)
    except OSError:
        return []
    owned = {os.path.realpath(p) for p in ours}
    candidates = [f for f in files if os.path.realpath(f) not in owned][:MAX_PROBES]
    return list(await asyncio.gather(*(asyncio.to_thread(probe, f, timeout) for f in candidates)))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def probe(path: Path, timeout: float) -> RuntimeInfo:
    """One connection file: alive (it answered kernel_info on its shell socket) or dead."""
    base = RuntimeInfo(
        runtime_id=path.stem.removeprefix("kernel-")[:8],
        connection_file=str(path),
        status="dead",
        started_at=_mtime(path) or None,
        owned=False,
    )
    try:
        info = json.loads(path.read_text())
        base = _replace(base, kernel_name=info.get("kernel_name") or None,
                        transport=info.get("transport"))  # fmt: skip
        reply = _kernel_info(info, timeout)
    except Exception:  # not a connection file, or no kernel behind it
        return base
    if reply is None:
        return base
    language = (reply.get("content", {}).get("language_info") or {}).get("name")
    return _replace(base, language=language, status="idle")


def _kernel_info(info: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """A kernel_info_request on the shell socket (plain zmq: no client machinery, no
    event loop in this thread); None without an answer within ``timeout``."""
    import zmq
    from jupyter_client.session import Session

    transport, ip, port = info.get("transport", "tcp"), info["ip"], info["shell_port"]
    url = f"tcp://{ip}:{port}" if transport == "tcp" else f"ipc://{ip}-{port}"
    session = Session(
        key=str(info.get("key", "")).encode(),
        signature_scheme=info.get("signature_scheme", "hmac-sha256"),
    )
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(url)
        sent = session.send(sock, "kernel_info_request", {})
        assert sent is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and sock.poll(int(left * 1000)):
            _, msg = session.recv(sock, mode=zmq.NOBLOCK)
            if msg is not None and msg.get("parent_header", {}).get("msg_id") == sent["msg_id"]:
                return dict(msg)
        return None
    finally:
        sock.close()


def _replace(info: RuntimeInfo, **changes: object) -> RuntimeInfo:
    import msgspec

    return msgspec.structs.replace(info, **changes)
