"""Gateway kernels through a real daemon and a real Jupyter Kernel Gateway on 127.0.0.1.

One gateway (token, a 1 MB/s IOPub data rate limit), reached through a proxy that can
drop connections, and one daemon whose settings point at the proxy, for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import runtimed
from gateway_servers import (
    DroppingProxy,
    GatewayProcess,
    free_port,
    iopub_rate_option,
    kernel_gateway,
)
from helpers import DaemonProcess, wait_until
from runtimed.client.settings_client import SettingsClient

pytestmark = pytest.mark.daemon

BIN = Path(sys.executable).parent
TIMEOUT = 5.0  # gateway.request_timeout


@pytest.fixture(scope="module")
def kg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = kernel_gateway(tmp_path_factory.mktemp("kg"), iopub_rate_option(1_000_000))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def proxy(kg: GatewayProcess) -> Iterator[DroppingProxy]:
    p = DroppingProxy(kg.port)
    yield p
    p.close()


@pytest.fixture(scope="module")
def gw_daemon(
    tmp_path_factory: pytest.TempPathFactory, kg: GatewayProcess, proxy: DroppingProxy
) -> Iterator[DaemonProcess]:
    cache = tmp_path_factory.mktemp("gw-daemon") / "cache"
    (cache / "config").mkdir(parents=True)
    token_file = cache / "config" / "gateway-token"
    token_file.write_text(kg.token + "\n")
    settings = {"gateway": {"url": proxy.url, "token_file": str(token_file)}}
    settings["gateway"]["request_timeout"] = TIMEOUT
    (cache / "config" / "settings.json").write_text(json.dumps(settings))
    d = DaemonProcess(cache, ["--uv-pool-size", "0"])
    d.start()
    yield d
    d.stop()


def runt(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runt"), *args, "--socket", str(d.socket_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip


def start_runtime(d: DaemonProcess) -> str:
    started = runt(d, "start", "gateway:python3")
    assert started.returncode == 0, started.stderr + d.log_path.read_text()[-3000:]
    return started.stdout.strip()


def test_gateway_kernel_runs_cells_into_the_document(
    gw_daemon: DaemonProcess, kg: GatewayProcess, proxy: DroppingProxy
) -> None:
    runtime_id = start_runtime(gw_daemon)
    ps = json.loads(runt(gw_daemon, "ps", "--json").stdout)
    (info,) = [r for r in ps if r["runtime_id"] == runtime_id]
    assert info["env_source"] == "gateway:python3" and info["transport"] == "gateway/v1"
    assert info["connection_file"].startswith(proxy.url + "/api/kernels/")
    assert info["status"] == "idle" and info["pid"] is None
    kernel_id = info["connection_file"].rsplit("/", 1)[1]
    assert kernel_id in kg.kernel_ids()
    table = runt(gw_daemon, "ps").stdout
    assert "gateway:python3" in table and "gateway/v1" in table

    with runtimed.Session(info["notebook_id"], socket_path=gw_daemon.socket_path) as s:
        assert s.run("print('hi'); 1+1").stdout == "hi\n"
        big = s.run("print('x' * 600_000)")  # over the blob threshold: a blob
        assert big.success and len(big.stdout) == 600_001
        assert not s.run("1/0").success
    with gw_daemon.client() as client:
        entries = client.executions(runtime_id=runtime_id)
        assert [e.source for e in entries][-1] == "print('hi'); 1+1"
    assert runt(gw_daemon, "kill", runtime_id).returncode == 0
    wait_until(lambda: kernel_id not in kg.kernel_ids(), timeout=10, what="kernel deleted")


def test_notebook_metadata_picks_the_gateway(gw_daemon: DaemonProcess, tmp_path: Path) -> None:
    path = tmp_path / "remote.ipynb"
    nb = {
        "cells": [],
        "metadata": {"runt": {"gateway": {"kernelspec": "python3"}}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))
    with runtimed.Session.open(path, socket_path=gw_daemon.socket_path) as s:
        assert s.run("import os; os.getpid()").success
        assert s.env_source == "gateway:python3"
        s.shutdown_kernel()


def test_unknown_remote_kernelspec_is_a_clear_error(gw_daemon: DaemonProcess) -> None:
    failed = runt(gw_daemon, "start", "gateway:nope")
    assert failed.returncode == 1
    assert "has no kernelspec 'nope'" in failed.stderr and "python3" in failed.stderr


def test_iopub_rate_limit_error_reaches_the_cell(gw_daemon: DaemonProcess) -> None:
    runtime_id = start_runtime(gw_daemon)
    notebook_id = f"runtime-{runtime_id}"
    with runtimed.Session(notebook_id, socket_path=gw_daemon.socket_path) as s:
        flood = "for i in range(40):\n    print('y' * 200_000)"
        result = s.run(flood, timeout=60)
        assert "IOPub data rate exceeded" in result.stderr
    runt(gw_daemon, "kill", runtime_id)


def test_dropped_websocket_reconnects_without_losing_output(
    gw_daemon: DaemonProcess, proxy: DroppingProxy
) -> None:
    runtime_id = start_runtime(gw_daemon)
    with runtimed.Session(f"runtime-{runtime_id}", socket_path=gw_daemon.socket_path) as s:
        assert s.run("x = 41").success
        cell = s.create_cell("import time\nprint('before', flush=True)\ntime.sleep(1.5)\nx + 1")
        execution_id = s.queue_cell(cell)
        time.sleep(0.5)  # the kernel is inside the sleep: drop the connection under it
        proxy.drop()
        result = s.wait_for_execution(execution_id, timeout=30)
        assert result.success, result.message
        assert result.stdout == "before\n"
        assert result.display_data[0].data["text/plain"] == "42"
        assert s.run("x").display_data[0].data["text/plain"] == "41"  # same kernel
    runt(gw_daemon, "kill", runtime_id)


def test_killed_kernel_ends_the_cell_and_next_run_starts_one(gw_daemon: DaemonProcess) -> None:
    runtime_id = start_runtime(gw_daemon)
    with runtimed.Session(f"runtime-{runtime_id}", socket_path=gw_daemon.socket_path) as s:
        started = time.monotonic()
        died = s.run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", timeout=60)
        assert not died.success and time.monotonic() - started < TIMEOUT + 10
        assert "died" in (died.message or "") + died.stderr
        assert s.run("1+1").display_data[0].data["text/plain"] == "2"
    runt(gw_daemon, "kill", runtime_id)


def test_killed_gateway_ends_the_cell_and_next_run_starts_a_new_kernel(
    gw_daemon: DaemonProcess, kg: GatewayProcess
) -> None:
    runtime_id = start_runtime(gw_daemon)
    with runtimed.Session(f"runtime-{runtime_id}", socket_path=gw_daemon.socket_path) as s:
        assert s.run("y = 1").success
        cell = s.create_cell("import time; time.sleep(60)")
        execution_id = s.queue_cell(cell)
        time.sleep(0.5)
        started = time.monotonic()
        kg.kill()
        result = s.wait_for_execution(execution_id, timeout=60)
        assert not result.success
        assert time.monotonic() - started < TIMEOUT + 10
        kg.start()
        again = s.run("'y' in dir()", timeout=60)
        assert again.success, again.message
        assert again.display_data[0].data["text/plain"] == "False"
    runt(gw_daemon, "kill", runtime_id)


def test_runt_gateway_status(gw_daemon: DaemonProcess, proxy: DroppingProxy) -> None:
    shown = runt(gw_daemon, "gateway", "status")
    assert shown.returncode == 0, shown.stderr
    assert f"gateway {proxy.url}: reachable" in shown.stdout
    assert "gateway:python3" in shown.stdout and "(default)" in shown.stdout
    report = json.loads(runt(gw_daemon, "gateway", "status", "--json").stdout)
    assert report["reachable"] and report["kernelspecs"][0]["name"] == "python3"
    with SettingsClient(gw_daemon.socket_path) as settings:
        settings.set("gateway.url", f"http://127.0.0.1:{free_port()}")
        try:
            down = runt(gw_daemon, "gateway", "status")
            assert down.returncode == 1 and "cannot reach the gateway" in down.stderr
        finally:
            settings.set("gateway.url", proxy.url)


def test_gateway_kernel_pool_hands_out_a_started_kernel(
    gw_daemon: DaemonProcess, kg: GatewayProcess
) -> None:
    before = set(kg.kernel_ids())
    with SettingsClient(gw_daemon.socket_path) as settings:
        settings.set("kernel_pool.gateway_size", 1)
        try:
            wait_until(lambda: len(set(kg.kernel_ids()) - before) == 1, timeout=60,
                       what="a pooled gateway kernel")  # fmt: skip
            (pooled,) = set(kg.kernel_ids()) - before

            def pool_holds_it() -> bool:  # the pool's session answered: it is connected
                model = kg.request("GET", f"/api/kernels/{pooled}")
                assert isinstance(model, dict)
                return bool(model["connections"]) and model["execution_state"] == "idle"

            wait_until(pool_holds_it, timeout=60, what="the pooled kernel ready")
            runtime_id = start_runtime(gw_daemon)
            ps = json.loads(runt(gw_daemon, "ps", "--json").stdout)
            (info,) = [r for r in ps if r["runtime_id"] == runtime_id]
            assert info["connection_file"].endswith(pooled)  # the pooled one
            with runtimed.Session(f"runtime-{runtime_id}", socket_path=gw_daemon.socket_path) as s:
                assert s.run("1+1").display_data[0].data["text/plain"] == "2"
            runt(gw_daemon, "kill", runtime_id)
        finally:
            settings.set("kernel_pool.gateway_size", 0)
    wait_until(lambda: set(kg.kernel_ids()) <= before, timeout=30, what="pool drained")
