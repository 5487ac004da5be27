"""The gateway pieces in-process: framings, REST errors within request_timeout (a down,
slow, garbage or token-refusing gateway), and a KernelSession over the legacy JSON
framing of a real Jupyter Kernel Gateway."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway_servers import GatewayProcess, free_port, kernel_gateway, legacy_framing_option
from runtimed.daemon.gateway.gateway_framing import (
    decode_legacy,
    decode_legacy_binary,
    decode_v1,
    encode_legacy,
    encode_v1,
    request_header,
)
from runtimed.daemon.gateway.gateway_provider import GatewayKernelProvider
from runtimed.daemon.gateway.gateway_rest import GatewayRest
from runtimed.daemon.gateway.gateway_settings import GatewayError, GatewaySettings
from runtimed.daemon.kernels.channels import decode_parts
from runtimed.daemon.kernels.provider import KernelRequest


def _message() -> dict[str, object]:
    return {
        "header": request_header("execute_request", "s1", "me"),
        "parent_header": {"msg_id": "p"},
        "metadata": {},
        "content": {"code": "1+1"},
    }


def test_v1_framing_round_trips() -> None:
    msg = _message()
    channel, parts = decode_v1(encode_v1("shell", msg))
    decoded = decode_parts(parts)
    assert channel == "shell" and decoded["header"] == msg["header"]
    assert decoded["parent_header"] == {"msg_id": "p"} and decoded["content"] == {"code": "1+1"}


def test_legacy_framings_decode() -> None:
    msg = _message()
    channel, decoded = decode_legacy(encode_legacy("iopub", msg))
    assert channel == "iopub" and decoded["msg_type"] == "execute_request"
    import json
    import struct

    body = json.dumps({**msg, "channel": "iopub", "buffers": []}).encode()
    buffer = b"\x00\x01binary"
    frame = struct.pack("!3I", 2, 12, 12 + len(body)) + body + buffer
    channel, decoded = decode_legacy_binary(frame)
    assert channel == "iopub" and bytes(decoded["buffers"][0]) == buffer


def test_buffers_go_out_in_both_framings() -> None:
    """A comm_msg's binary buffers (a widget's bytes from the page) after the parts."""
    msg = {**_message(), "buffers": [b"\x00\x01", b"raw"]}
    _, parts = decode_v1(encode_v1("shell", msg))
    assert [bytes(b) for b in decode_parts(parts)["buffers"]] == [b"\x00\x01", b"raw"]
    frame = encode_legacy("shell", msg)
    assert isinstance(frame, bytes)
    channel, decoded = decode_legacy_binary(frame)
    assert channel == "shell" and decoded["content"] == {"code": "1+1"}
    assert [bytes(b) for b in decoded["buffers"]] == [b"\x00\x01", b"raw"]


@pytest.mark.parametrize("garbage", [b"", b"\x05" + b"\x00" * 7, b"\xff" * 64])
def test_garbage_frames_are_refused(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        decode_v1(garbage)
    with pytest.raises(ValueError):
        decode_legacy_binary(garbage)
    with pytest.raises(ValueError):
        decode_legacy(garbage or b"[]")


# --- a gateway that is down, slow, garbage or refusing ------------------------------------


@pytest.fixture
async def fake_gateway() -> AsyncIterator[str]:
    """/slow/api/... never answers in time, /garbage/api/... answers HTML,
    /locked/api/... answers 403."""
    # Released at teardown: aiohttp's cleanup waits for a handler still running (a slow one
    # sleeping 30 s held every test using this fixture for 30 s).
    released = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), 30)
        return web.json_response({})

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    async def locked(request: web.Request) -> web.Response:
        return web.json_response({"message": "Forbidden"}, status=403)

    app = web.Application()
    app.router.add_route("*", "/slow/{tail:.*}", slow)
    app.router.add_route("*", "/garbage/{tail:.*}", garbage)
    app.router.add_route("*", "/locked/{tail:.*}", locked)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    released.set()
    await runner.cleanup()


async def _start_error(url: str, timeout: float = 1.0) -> tuple[GatewayError, float]:
    rest = GatewayRest(GatewaySettings(url, "t", request_timeout=timeout))
    started = time.monotonic()
    try:
        with pytest.raises(GatewayError) as caught:
            await rest.start_kernel("python3")
    finally:
        await rest.close()
    return caught.value, time.monotonic() - started


async def test_down_gateway_is_a_clear_error() -> None:
    error, took = await _start_error(f"http://127.0.0.1:{free_port()}")
    assert error.code == "gateway_unreachable" and "is it running" in error.message
    assert took < 1.0


async def test_slow_gateway_errors_within_request_timeout(fake_gateway: str) -> None:
    error, took = await _start_error(fake_gateway + "/slow", timeout=0.5)
    assert error.code == "gateway_timeout" and "within 0.5 s" in error.message
    assert took < 1.5


async def test_garbage_and_refusing_gateways(fake_gateway: str) -> None:
    error, _ = await _start_error(fake_gateway + "/garbage")
    assert error.code == "gateway_garbage" and "not the Jupyter kernel API" in error.message
    error, _ = await _start_error(fake_gateway + "/locked")
    assert error.code == "gateway_unauthorized" and "gateway.token" in error.message


def test_settings_need_a_url_and_read_the_token_file(tmp_path: Path) -> None:
    values: dict[str, object] = {"gateway.url": None}
    with pytest.raises(GatewayError, match=r"runt config set gateway\.url"):
        GatewaySettings.read(values.get)
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    values = {
        "gateway.url": "https://gw.example:8888/base/",
        "gateway.token": "ignored",
        "gateway.token_file": str(token),
        "gateway.headers": {"X-User": "me"},
        "gateway.request_timeout": 7,
        "gateway.validate_cert": True,
    }
    settings = GatewaySettings.read(values.get)
    assert settings.http_headers() == {"X-User": "me", "Authorization": "token s3cret"}
    assert settings.channels_url("k", "s") == (
        "wss://gw.example:8888/base/api/kernels/k/channels?session_id=s"
    )


# --- the legacy framing on a real Kernel Gateway ------------------------------------------


@pytest.fixture(scope="module")
def legacy_kg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = kernel_gateway(tmp_path_factory.mktemp("kg-legacy"), legacy_framing_option())
    yield gateway
    gateway.stop()


@pytest.mark.daemon
async def test_legacy_json_framing_runs_a_kernel(legacy_kg: GatewayProcess, tmp_path: Path) -> None:
    values = {
        "gateway.url": legacy_kg.url,
        "gateway.token": legacy_kg.token,
        "gateway.token_file": None,
        "gateway.headers": {},
        "gateway.request_timeout": 10.0,
        "gateway.validate_cert": True,
    }
    provider = GatewayKernelProvider(None, values.get, tmp_path, tmp_path)  # type: ignore[arg-type]
    request = KernelRequest(env_source="gateway:", metadata={}, notebook_path=None, cwd=tmp_path)
    kernel = await provider.acquire(request)
    try:
        assert kernel.env_source == "gateway:python3"
        assert kernel.session.transport == "gateway/json"
        outputs: list[dict[str, object]] = []
        reply = await kernel.session.execute("print('legacy'); 6*7", outputs.append)
        assert reply.status == "ok"
        kinds = {m["msg_type"]: m["content"] for m in outputs}
        assert kinds["stream"] == {"name": "stdout", "text": "legacy\n"}
        assert kinds["execute_result"]["data"] == {"text/plain": "42"}  # type: ignore[index]
        await kernel.session.interrupt()  # REST interrupt of an idle kernel: harmless
        await kernel.session.restart()
        reply = await kernel.session.execute("'print' in dir()")
        assert reply.status == "ok"
    finally:
        await provider.release(kernel)
        await provider.close()
    assert legacy_kg.kernel_ids() == []
