"""Real Jupyter Kernel Gateway / Enterprise Gateway processes on 127.0.0.1 for the gateway
tests and bench/gateway.py: a free port, a token, a private HOME and runtime dir."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class GatewayProcess:
    """``python -m <module>`` serving the kernel API on ``url`` behind ``token``."""

    home: Path
    python: str = sys.executable
    module: str = "kernel_gateway"
    app: str = "KernelGatewayApp"
    options: list[str] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "gateway.log"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        """Start it (on the same port after a ``stop``) and wait until it answers."""
        if not self.port:
            self.port = free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HOME": str(self.home),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "IPYTHONDIR": str(self.home / "ipython"),
        }
        app = self.app
        command = [
            self.python, "-m", self.module, f"--{app}.ip=127.0.0.1", f"--{app}.port={self.port}",
            f"--{app}.auth_token={self.token}", f"--{app}.allow_origin=http://127.0.0.1",
            # A kernel started with an env in the request (runtimed sends KERNEL_USERNAME)
            # gets only the whitelisted variables: without these IPython would write to the
            # real user's ~/.ipython.
            f"--{app}.env_process_whitelist=HOME", f"--{app}.env_process_whitelist=IPYTHONDIR",
            *self.options,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.home, env=env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.request("GET", "/api/kernelspecs")
                return self
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.module} did not start:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def request(self, method: str, path: str, body: object = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            raw = reply.read()
        return json.loads(raw) if raw else None

    def kernel_ids(self) -> list[str]:
        kernels = self.request("GET", "/api/kernels")
        assert isinstance(kernels, list)
        return [str(k["id"]) for k in kernels]

    def kill(self) -> None:
        """SIGKILL the gateway and its kernels (its whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop it and every kernel it started."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.kill_group()
            return
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        self.kill_group()

    def kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kernel_gateway(home: Path, *options: str) -> GatewayProcess:
    """A started Jupyter Kernel Gateway of this venv (its python3 kernelspec: ipykernel)."""
    listing = "--JupyterWebsocketPersonality.list_kernels=True"  # GET /api/kernels
    return GatewayProcess(home, options=[listing, *options]).start()


def legacy_framing_option() -> str:
    """The option that makes a jupyter_server-based gateway pick the legacy JSON framing."""
    return "--ZMQChannelsWebsocketConnection.kernel_ws_protocol="


def iopub_rate_option(bytes_per_sec: float) -> str:
    return f"--ZMQChannelsWebsocketConnection.iopub_data_rate_limit={bytes_per_sec}"


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in a thread of its own: ``drop()`` cuts every
    connection through it (a dropped websocket, as a flaky network does)."""

    def __init__(self, target_port: int) -> None:
        import asyncio
        import threading

        self.target_port = target_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, ready: object) -> None:
        import asyncio

        async def serve() -> None:
            server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()  # type: ignore[attr-defined]
            async with server:
                await server.serve_forever()

        asyncio.set_event_loop(self._loop)
        with contextlib.suppress(BaseException):
            self._loop.run_until_complete(serve())

    async def _pipe(self, reader: object, writer: object) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()  # type: ignore[attr-defined]
            return
        self._writers.update((writer, up_writer))  # type: ignore[arg-type]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))  # type: ignore[arg-type]

    def drop(self) -> None:
        """Abort every connection now."""

        def abort() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(abort)

    def close(self) -> None:
        self.drop()
        self._loop.call_soon_threadsafe(self._loop.stop)
