"""A real Jupyter Enterprise Gateway 3.x, in a venv of its own (its pins, jupyter_server
1.x among them, conflict with ours), made once per module with uv and run on 127.0.0.1:
one kernel started, one cell run, the kernel deleted, through GatewayKernelProvider."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_servers import GatewayProcess
from runtimed.daemon.gateway.gateway_provider import GatewayKernelProvider
from runtimed.daemon.kernels.provider import KernelRequest

pytestmark = pytest.mark.daemon


def _uv() -> str:
    found = shutil.which(
        "uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if found is None:
        pytest.fail("uv is needed to build Enterprise Gateway's venv (pip install uv)")
    return found


def _enterprise_gateway_venv(where: Path) -> Path:
    uv = _uv()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([uv, "venv", "--python", base, str(where)], check=True, env=env,
                   capture_output=True, timeout=120)  # fmt: skip
    install = [uv, "pip", "install", "--python", str(where / "bin" / "python"),
               "jupyter_enterprise_gateway>=3,<4", "ipykernel"]  # fmt: skip
    offline = subprocess.run([*install, "--offline"], env=env, capture_output=True, timeout=300)
    if offline.returncode != 0:  # not in uv's cache yet: from the registry
        online = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        assert online.returncode == 0, online.stderr[-2000:]
    return where


@pytest.fixture(scope="module")
def enterprise_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    venv = _enterprise_gateway_venv(tmp_path_factory.mktemp("eg") / "venv")
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("eg-home"),
        python=str(venv / "bin" / "python"),
        module="enterprise_gateway",
        app="EnterpriseGatewayApp",
        # EG refuses kernels of user root by default; CI runs as root.
        options=[
            "--EnterpriseGatewayApp.list_kernels=True",
            "--EnterpriseGatewayApp.unauthorized_users=nobody-at-all",
        ],
    ).start(timeout=120)
    yield gateway
    gateway.stop()


async def test_one_cell_through_enterprise_gateway(
    enterprise_gateway: GatewayProcess, tmp_path: Path
) -> None:
    eg = enterprise_gateway
    values = {
        "gateway.url": eg.url,
        "gateway.token": eg.token,
        "gateway.token_file": None,
        "gateway.headers": {},
        "gateway.request_timeout": 60.0,
        "gateway.validate_cert": True,
    }
    provider = GatewayKernelProvider(None, values.get, tmp_path, tmp_path)  # type: ignore[arg-type]
    request = KernelRequest(
        env_source="gateway:python3", metadata={}, notebook_path=None, cwd=tmp_path
    )
    try:
        kernel = await provider.acquire(request)
    except BaseException:
        await provider.close()
        raise
    try:
        outputs: list[dict[str, object]] = []
        reply = await kernel.session.execute("import sys; print(sys.prefix)", outputs.append)
        assert reply.status == "ok"
        (stream,) = [m["content"] for m in outputs if m["msg_type"] == "stream"]
        assert stream["text"].strip().endswith("venv")  # type: ignore[index]  # EG's own venv
        assert kernel.session.transport in ("gateway/v1", "gateway/json")
    finally:
        await provider.release(kernel)
        await provider.close()
    assert eg.kernel_ids() == []
