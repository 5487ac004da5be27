"""The daemon over HTTP (issue 24): figures in one run.

    python bench/over_http.py            # full run
    python bench/over_http.py --smoke    # quick run for CI, same figures from fewer samples

1. ``run("1+1")`` on a running kernel: a Session over ``/ws`` vs a Session over the Unix
   socket vs raw jupyter_client, p50 / p99. The three take turns in blocks of 10 runs, so
   all see the same machine. Target: websocket p50 <= 1.3x the socket's.
2. Edit seen by a peer (bench/sync.py's measure: one character typed by A until B's
   replica observes it): websocket Sessions vs the pycrdt-websocket baseline (the transport
   of Jupyter's real-time collaboration), the socket for reference. Target: <= 1x (p50).
3. 200 websocket clients on one notebook: p99 edit latency (B, and the slowest of all
   receivers) and the daemon's RSS; 200 socket clients for reference. The 198 receivers
   besides A and B share one helper process (bench/sync.py), whose loop is most of the
   "all" figure.
4. REST ``POST /api/runtimes/{id}/execute?wait=S`` round trip of ``1+1`` (over one
   keep-alive connection) vs Jupyter Kernel Gateway's websocket execute (execute_request
   until its reply and idle), when ``--kernel-gateway PYTHON`` names a Python with
   jupyter-kernel-gateway and ipykernel installed (or ``jupyter-kernelgateway`` is on
   PATH). Target: <= 1x (p50).

Everything lives in a temp dir; the daemon and the baseline server are always stopped.
(Not ``bench/http.py``: a script's directory comes first on ``sys.path``, so that name
would shadow the standard library's ``http`` for every bench in this directory.)
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import runtimed
from execute import RawKernel, timed_ms
from gateway_baseline import gateway_execute, gateway_python, start_gateway, stop_gateway
from harness import DaemonProcess, PeakRss, bench_daemon, percentile, verdict
from sync import BaselineServer, edit_latency

WS_OVER_SOCKET = 1.3
WS_OVER_BASELINE = 1.0


def http_url(daemon: DaemonProcess, timeout: float = 60) -> str:
    """The daemon's HTTP address, once its HTTP server is up (it starts after warm-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with daemon.client() as client:
            url = client.daemon_info().http_url
        if url:
            return url
        time.sleep(0.05)
    raise SystemExit("the daemon's HTTP server did not start (is http.listen off?)")


def ms_line(name: str, times: list[float]) -> str:
    return f"  {name:<30} p50 {percentile(times, 50):7.2f} ms  p99 {percentile(times, 99):7.2f} ms"


def round_trips(daemon: DaemonProcess, url: str, token: str, work: Path, runs: int) -> bool:
    raw = RawKernel(Path(sys.executable), work)
    times: dict[str, list[float]] = {"socket": [], "ws": [], "raw": []}
    try:
        with (
            runtimed.Session("bench-http-socket", daemon.socket) as sock,
            runtimed.Session("bench-http-ws", url=url, token=token) as ws,
        ):
            for _ in range(10):  # warm-up: kernels started, imports done
                sock.run("1+1")
                ws.run("1+1")
                raw.run("1+1")
            for _ in range(max(runs // 10, 1)):
                times["socket"] += [timed_ms(lambda: sock.run("1+1")) for _ in range(10)]
                times["ws"] += [timed_ms(lambda: ws.run("1+1")) for _ in range(10)]
                times["raw"] += [raw.run("1+1") * 1000 for _ in range(10)]
    finally:
        raw.close()
    ratio = percentile(times["ws"], 50) / percentile(times["socket"], 50)
    print(f"run('1+1') on a running kernel, {len(times['ws'])} runs each (interleaved):")
    print(ms_line("Session over /ws:", times["ws"]))
    print(ms_line("Session over the Unix socket:", times["socket"]))
    print(ms_line("raw jupyter_client:", times["raw"]))
    p99 = percentile(times["ws"], 99) / percentile(times["socket"], 99)
    print(
        f"  websocket / socket (p50): {ratio:.2f}x (target <= {WS_OVER_SOCKET}x) "
        f"{verdict(ratio <= WS_OVER_SOCKET)}; p99 ratio {p99:.2f}x"
    )
    return ratio <= WS_OVER_SOCKET


def peer_edits(daemon: DaemonProcess, url: str, tmp: Path, edits: int) -> bool:
    baseline = BaselineServer(tmp)
    baseline.start()
    try:
        ws = asyncio.run(edit_latency("runtimed", url, 2, edits))
        sock = asyncio.run(edit_latency("runtimed", str(daemon.socket), 2, edits))
        base = asyncio.run(edit_latency("baseline", baseline.url, 2, edits))
    finally:
        baseline.stop()
    ratio = percentile(ws.b, 50) / percentile(base.b, 50)
    print(f"edit seen by a peer, {edits} edits each:")
    print(ms_line("websocket Sessions:", ws.b))
    print(ms_line("Unix socket Sessions:", sock.b))
    print(ms_line("pycrdt-websocket baseline:", base.b))
    print(
        f"  websocket / baseline (p50): {ratio:.2f}x (target <= {WS_OVER_BASELINE:.0f}x) "
        f"{verdict(ratio <= WS_OVER_BASELINE)}"
    )
    return ratio <= WS_OVER_BASELINE


def crowd(daemon: DaemonProcess, url: str, clients: int, edits: int) -> None:
    mb = 2**20
    for name, target in (("websocket", url), ("Unix socket", str(daemon.socket))):
        with PeakRss(daemon) as rss:
            lat = asyncio.run(edit_latency("runtimed", target, clients, edits))
        print(f"{clients} {name} clients on one notebook, {edits} edits:")
        print(ms_line("edit seen by B:", lat.b))
        print(ms_line(f"edit seen by all {clients - 1}:", lat.slowest))
        print(f"  daemon RSS: {rss.base / mb:.0f} MB before, peak {rss.peak / mb:.0f} MB")


class Rest:
    """JSON requests over one keep-alive HTTP connection, with the token."""

    def __init__(self, url: str, token: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        reply = self.conn.getresponse()
        raw = reply.read()
        return reply.status, json.loads(raw) if raw else None


def rest_execute(url: str, token: str, runs: int) -> list[float] | None:
    rest = Rest(url, token)
    status, body = rest.call("POST", "/api/runtimes", {"kernel": "python3"})
    if status == 404:
        print("REST execute: not measured (this daemon serves no /api/runtimes)")
        return None
    if status not in (200, 201):
        raise SystemExit(f"POST /api/runtimes answered {status}: {body}")
    runtime_id = body["runtime"]["runtime_id"]
    execute = f"/api/runtimes/{runtime_id}/execute?wait=60"
    times: list[float] = []
    for i in range(runs + 10):
        started = time.perf_counter()
        status, body = rest.call("POST", execute, {"code": "1+1"})
        if status != 200:
            raise SystemExit(f"execute answered {status}: {body}")
        if i >= 10:  # the first runs start the kernel and warm up
            times.append((time.perf_counter() - started) * 1000)
    rest.call("DELETE", f"/api/runtimes/{runtime_id}")
    return times


def rest_figures(url: str, token: str, runs: int, gateway_python: str | None, work: Path) -> bool:
    times = rest_execute(url, token, runs)
    if times is None:
        return True
    print(f"REST POST /api/runtimes/{{id}}/execute?wait of '1+1', {runs} runs:")
    print(ms_line("REST execute:", times))
    if gateway_python is None:
        print("  Jupyter Kernel Gateway: not measured (pass --kernel-gateway PYTHON)")
        return True
    gateway = start_gateway(gateway_python, work)
    try:
        baseline = gateway_execute(gateway, runs)
    finally:
        stop_gateway(gateway)
    print(ms_line("Kernel Gateway websocket:", baseline))
    ratio = percentile(times, 50) / percentile(baseline, 50)
    print(f"  REST / Kernel Gateway (p50): {ratio:.2f}x (target <= 1x) {verdict(ratio <= 1)}")
    return ratio <= 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few samples, for CI")
    parser.add_argument(
        "--kernel-gateway",
        metavar="PYTHON",
        default=gateway_python(),
        help="a Python with jupyter-kernel-gateway and ipykernel (the REST baseline)",
    )
    args = parser.parse_args()
    runs, edits, clients, crowd_edits = (10, 20, 5, 10) if args.smoke else (300, 500, 200, 200)
    base = Path(tempfile.mkdtemp(prefix="runtimed-bench-http-"))
    os.environ.setdefault("UV_CACHE_DIR", str(base / "uv-cache"))
    daemon = bench_daemon(base / "cache", "--uv-pool-size", "3", "--conda-pool-size", "0")
    ok = True
    try:
        daemon.start()
        # (smoke: the third env, for REST, may still be building while the first figures run)
        daemon.wait_pool("uv", 2 if args.smoke else 3, timeout=600, settled=not args.smoke)
        url = http_url(daemon)
        token = (daemon.cache_dir / "http-token").read_text().strip()
        os.environ["RUNTIMED_TOKEN"] = token  # for sync.py's helper processes
        print(f"daemon HTTP at {url}")
        ok &= round_trips(daemon, url, token, base, runs)
        ok &= peer_edits(daemon, url, base, edits)
        crowd(daemon, url, clients, crowd_edits)
        ok &= rest_figures(url, token, runs, args.kernel_gateway, base)
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("all targets met" if ok else "some targets MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
