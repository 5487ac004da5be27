"""Jupyter Kernel Gateway as a baseline (bench/over_http.py): its own process on
127.0.0.1 with one python3 kernel, ``1+1`` executed over its websocket
(``/api/kernels/{id}/channels``) until the execute_reply and the idle status."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    url: str
    token: str


def gateway_python() -> str | None:
    """The Python of ``jupyter-kernelgateway`` on PATH, if any."""
    script = shutil.which("jupyter-kernelgateway")
    if script is None:
        return None
    first = Path(script).read_text(errors="replace").splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(gateway: Gateway, method: str, path: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        gateway.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"token {gateway.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        raw = reply.read()
    return json.loads(raw) if raw else None


def start_gateway(python: str, work: Path) -> Gateway:
    port, token = _free_port(), secrets.token_hex(16)
    home = work / "gateway"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "HOME": str(home)}
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            f"--KernelGatewayApp.auth_token={token}",
        ],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    gateway = Gateway(proc, f"http://127.0.0.1:{port}", token)
    deadline = time.monotonic() + 60
    while True:
        try:
            _request(gateway, "GET", "/api")
            return gateway
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_gateway(gateway)
                raise SystemExit("Jupyter Kernel Gateway did not start") from None
            time.sleep(0.05)


def stop_gateway(gateway: Gateway) -> None:
    if gateway.proc.poll() is None:
        gateway.proc.terminate()
        try:
            gateway.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gateway.proc.kill()
            gateway.proc.wait(timeout=10)


def _execute_request(code: str, session: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": session,
            "username": "bench",
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    return msg_id, json.dumps(message)


def gateway_execute(gateway: Gateway, runs: int) -> list[float]:
    """Milliseconds of each ``1+1`` round trip (after 10 warm-up runs)."""
    from websockets.sync.client import connect

    kernel = _request(gateway, "POST", "/api/kernels", {"name": "python3"})
    assert isinstance(kernel, dict)
    ws_url = gateway.url.replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels"
    session = uuid.uuid4().hex
    times: list[float] = []
    headers = {"Authorization": f"token {gateway.token}"}
    with connect(ws_url, additional_headers=headers, compression=None, proxy=None) as ws:
        for i in range(runs + 10):
            msg_id, message = _execute_request("1+1", session)
            started = time.perf_counter()
            ws.send(message)
            replied = idle = False
            while not (replied and idle):
                msg = json.loads(ws.recv(timeout=120))
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                replied |= msg["msg_type"] == "execute_reply"
                idle |= msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
            if i >= 10:
                times.append((time.perf_counter() - started) * 1000)
    _request(gateway, "DELETE", f"/api/kernels/{kernel['id']}")
    return times
