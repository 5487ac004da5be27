"""Kernels on a Jupyter Kernel Gateway (issue 27): one real KG on 127.0.0.1, three figures.

1. New notebook to first result (``1+1``) through the daemon's GatewayKernelProvider vs
   jupyter_server's own gateway client (GatewayKernelManager + GatewayKernelClient) on
   the same KG, in the same run.
2. ``1+1`` round trip through the provider's KernelSession vs a raw websocket client
   (aiohttp, legacy JSON) on the same kernel (target <= 1.2x).
3. N concurrent kernel starts through the one KG (20; 2 with --smoke): p50/p95, all
   must succeed.

``python bench/gateway.py [--smoke]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import runtimed
from harness import DaemonProcess, percentile, verdict

if TYPE_CHECKING:
    from gateway_servers import GatewayProcess


def provider_settings(kg: GatewayProcess) -> dict[str, Any]:
    return {
        "gateway.url": kg.url,
        "gateway.token": kg.token,
        "gateway.token_file": None,
        "gateway.headers": {},
        "gateway.request_timeout": 60.0,
        "gateway.validate_cert": True,
    }


def first_result_ours(kg: GatewayProcess, work: Path) -> tuple[float, float]:
    """Seconds from opening a new notebook (runt.gateway.kernelspec) to ``2``: the
    daemon's first notebook (it loads its notebook service then), and the next one."""
    cache = work / "daemon"
    (cache / "config").mkdir(parents=True)
    settings = {"gateway": {"url": kg.url, "token": kg.token}}
    (cache / "config" / "settings.json").write_text(json.dumps(settings))
    d = DaemonProcess(cache, ["--uv-pool-size", "0"]).start()
    try:
        took = []
        for name in ("first", "second"):
            path = work / f"{name}.ipynb"
            nb = {"cells": [], "metadata": {"runt": {"gateway": {"kernelspec": "python3"}}}}
            path.write_text(json.dumps({**nb, "nbformat": 4, "nbformat_minor": 5}))
            started = time.perf_counter()
            with runtimed.Session.open(path, socket_path=d.socket_path) as s:
                result = s.run("1+1", timeout=120)
                took.append(time.perf_counter() - started)
                assert result.display_data[0].data["text/plain"] == "2", result.message
                s.shutdown_kernel()
        return took[0], took[1]
    finally:
        d.stop()


async def first_result_jupyter_server(kg: GatewayProcess) -> float:
    """The same through jupyter_server's gateway client (a thread per channel)."""
    from jupyter_server.gateway.gateway_client import GatewayClient
    from jupyter_server.gateway.managers import GatewayKernelManager

    client = GatewayClient.instance()
    client.url, client.auth_token = kg.url, kg.token
    # Its websocket carries no token (one of the reasons the provider does not use it):
    # add the header, or a token-protected gateway answers 401.
    import functools

    from jupyter_server.gateway import managers

    original = managers.websocket.create_connection
    auth = [f"Authorization: token {kg.token}"]
    managers.websocket.create_connection = functools.partial(original, header=auth)  # type: ignore[attr-defined]
    started = time.perf_counter()
    km = GatewayKernelManager()
    await km.start_kernel(kernel_name="python3")
    kc = km.client()
    await kc.start_channels()
    msg_id = kc.execute("1+1")
    result = None
    while result is None:  # its channels are queues fed by threads
        msg = await kc.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
            result = msg["content"]["data"]["text/plain"]
    took = time.perf_counter() - started
    assert result == "2", result
    kc.stop_channels()
    await km.shutdown_kernel(now=True)
    GatewayClient.clear_instance()
    return took


async def round_trips(kg: GatewayProcess, runs: int, work: Path) -> tuple[list[float], list[float]]:
    """Milliseconds per ``1+1``: the provider's session, then a raw websocket client on
    the same kernel (10 warm-up runs each)."""
    import aiohttp

    from runtimed.daemon.gateway.gateway_provider import GatewayKernelProvider
    from runtimed.daemon.kernels.provider import KernelRequest

    provider = GatewayKernelProvider(None, provider_settings(kg).get, work, work)  # type: ignore[arg-type]
    request = KernelRequest(env_source="gateway:python3", metadata={}, notebook_path=None, cwd=work)
    kernel = await provider.acquire(request)
    ours: list[float] = []
    raw: list[float] = []
    try:
        for i in range(runs + 10):
            started = time.perf_counter()
            await kernel.session.execute("1+1")
            if i >= 10:
                ours.append((time.perf_counter() - started) * 1000)
        kernel_id = str(kernel.location).rsplit("/", 1)[1]
        url = kg.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        headers = {"Authorization": f"token {kg.token}"}
        async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(url) as ws:
            session = uuid.uuid4().hex
            for i in range(runs + 10):
                msg_id, text = _execute_request(session)
                started = time.perf_counter()
                await ws.send_str(text)
                replied = idle = False
                while not (replied and idle):
                    msg = json.loads((await ws.receive()).data)
                    if msg["parent_header"].get("msg_id") != msg_id:
                        continue
                    replied |= msg["msg_type"] == "execute_reply"
                    idle |= msg["msg_type"] == "status" and (
                        msg["content"]["execution_state"] == "idle"
                    )
                if i >= 10:
                    raw.append((time.perf_counter() - started) * 1000)
    finally:
        await provider.release(kernel)
        await provider.close()
    return ours, raw


def _execute_request(session: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": session,
              "username": "bench", "version": "5.3", "date": ""}  # fmt: skip
    content = {"code": "1+1", "silent": False, "store_history": True,
               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}  # fmt: skip
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content,
               "channel": "shell", "buffers": []}  # fmt: skip
    return msg_id, json.dumps(message)


async def concurrent_starts(kg: GatewayProcess, count: int, work: Path) -> list[float | None]:
    """Seconds each of ``count`` simultaneous starts took (None: failed)."""
    from runtimed.daemon.gateway.gateway_provider import GatewayKernelProvider
    from runtimed.daemon.kernels.provider import AcquiredKernel, KernelRequest

    provider = GatewayKernelProvider(None, provider_settings(kg).get, work, work)  # type: ignore[arg-type]
    request = KernelRequest(env_source="gateway:python3", metadata={}, notebook_path=None, cwd=work)

    async def one() -> tuple[float | None, AcquiredKernel | None]:
        started = time.perf_counter()
        try:
            kernel = await provider.acquire(request)
            await kernel.session.execute("1+1")
        except Exception as exc:
            print(f"  a start failed: {exc}")
            return None, None
        return time.perf_counter() - started, kernel

    results = await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.gather(*(provider.release(k) for _, k in results if k is not None))
    await provider.close()
    return [t for t, _ in results]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    args = parser.parse_args()
    from gateway_servers import kernel_gateway  # tests/, on sys.path once harness is in

    runs, starts = (5, 2) if args.smoke else (200, 20)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        kg = kernel_gateway(work / "kg")
        try:
            cold, ours = first_result_ours(kg, work)
            print("new notebook -> first result through Kernel Gateway:")
            print(f"  runtimed (daemon, Session.open + run)  {ours * 1000:8.0f} ms")
            print(f"    the daemon's first notebook          {cold * 1000:8.0f} ms")
            if args.smoke:  # importing jupyter_server's client alone takes seconds
                print("  jupyter_server gateway client: the baseline, not run with --smoke")
            else:
                theirs = asyncio.run(first_result_jupyter_server(kg))
                ms = theirs * 1000
                print(f"  jupyter_server gateway client          {ms:8.0f} ms (baseline)")

            mine, raw = asyncio.run(round_trips(kg, runs, work))
            ratio = percentile(mine, 50) / percentile(raw, 50)
            ok &= ratio <= 1.2 or args.smoke
            print(f"1+1 round trip, {runs} runs, same kernel:")
            for label, values in (("provider", mine), ("raw ws  ", raw)):
                p50, p95 = percentile(values, 50), percentile(values, 95)
                tail = " (baseline)" if label.startswith("raw") else ""
                print(f"  {label}  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms{tail}")
            print(f"  ratio {ratio:.2f}x (target <= 1.2x): {verdict(ratio <= 1.2)}")

            times = asyncio.run(concurrent_starts(kg, starts, work))
            done = [t for t in times if t is not None]
            ok &= len(done) == starts
            print(f"{starts} concurrent kernel starts through one KG (to a first result):")
            if done:
                print(f"  p50 {percentile(done, 50):.2f} s  p95 {percentile(done, 95):.2f} s")
            print(f"  {len(done)}/{starts} succeeded: {verdict(len(done) == starts)}")
        finally:
            kg.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
