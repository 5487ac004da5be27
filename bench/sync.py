"""Notebook-room figures in one run: edit latency between clients (runtimed vs the
pycrdt-websocket baseline), and time to open a 1,000-cell .ipynb.

    python bench/sync.py            # full run (1,000 edits per case, 3 cold opens)
    python bench/sync.py --smoke    # quick run for CI, same figures from fewer samples

Edit latency: client A inserts one character into a cell's source by writing to its local
replica (its observer ships the update frame at once, no request round trip); the clock runs
from just before that edit to the moment the receiver's ``doc.observe`` callback fires.
A and B live in this process (one asyncio loop). With 20 clients, the other 18 live in a
helper process (one asyncio loop) that stamps every arrival with the same system-wide
monotonic clock, so the bench reports both B (first peer to join after A) and the slowest of
all 19 receivers. The next edit starts only when every receiver has it.

Baseline: the same clients and edits through pycrdt-websocket (the transport of Jupyter's
real-time collaboration): a ``WebsocketServer`` room in its own process on 127.0.0.1, served
with the ``websockets`` library (no compression, as jupyter_server), and pycrdt ``Provider``
clients. asyncio sets TCP_NODELAY on TCP sockets by default; the bench checks it.

Everything lives in a temp dir; the daemon and the baseline server are always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text

from harness import bench_daemon, percentile, verdict
from runtimed.client.async_session import AsyncSession
from runtimed.documents.notebook import NotebookDoc

TARGETS = {"p50_ms": 2.0, "p99_ms": 10.0, "open_ms": 300.0}
WAIT = 10.0  # seconds any single arrival may take before the bench gives up
NOTEBOOK_ID = "bench-sync"

clock = time.monotonic  # CLOCK_MONOTONIC: one clock for every process on the machine


# --- receivers ------------------------------------------------------------------------


class Arrivals:
    """Stamps each update a doc observes; ``wait(k)`` returns once it has seen ``k``."""

    def __init__(self, doc: Doc[Any]) -> None:
        self.times: list[float] = []
        self._waiter: tuple[int, asyncio.Future[None]] | None = None
        self._sub = doc.observe(self._on_update)

    def _on_update(self, _event: Any) -> None:
        self.times.append(clock())
        if self._waiter is not None and len(self.times) >= self._waiter[0]:
            future = self._waiter[1]
            self._waiter = None
            if not future.done():
                future.set_result(None)

    async def wait(self, count: int) -> None:
        if len(self.times) >= count:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiter = (count, future)
        await asyncio.wait_for(future, WAIT)

    def reset(self) -> None:
        self.times.clear()


# --- transports: runtimed and the pycrdt-websocket baseline ----------------------------


@dataclass
class Client:
    nb: NotebookDoc  # the client's replica


@contextlib.asynccontextmanager
async def runtimed_clients(target: str, n: int) -> AsyncIterator[list[Client]]:
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for i in range(n):
            # A URL target is the daemon's /ws (bench/http.py; the token in RUNTIMED_TOKEN).
            where = {"url": target} if target.startswith("http") else {"socket_path": target}
            s = AsyncSession(NOTEBOOK_ID, client_name=f"bench-{i}", **where)
            await stack.enter_async_context(s)
            clients.append(Client(s.document))
        yield clients


class WsChannel:
    """A pycrdt ``Channel`` over a ``websockets`` connection (client or server side)."""

    def __init__(self, ws: Any, path: str) -> None:
        self._ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WsChannel:
        return self

    async def __anext__(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self._ws.send(message)

    async def recv(self) -> bytes:
        return bytes(await self._ws.recv())


def nodelay(ws: Any) -> bool:
    sock = ws.transport.get_extra_info("socket")
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


@contextlib.asynccontextmanager
async def baseline_clients(target: str, n: int) -> AsyncIterator[list[Client]]:
    from pycrdt import Provider
    from websockets.asyncio.client import connect

    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(n):
            ws = await stack.enter_async_context(
                connect(f"{target}/{NOTEBOOK_ID}", compression=None, max_size=None)
            )
            if not nodelay(ws):
                raise SystemExit("baseline client socket lacks TCP_NODELAY")
            nb = NotebookDoc()
            provider = Provider(nb.doc, WsChannel(ws, NOTEBOOK_ID))
            await stack.enter_async_context(provider)
            await asyncio.wait_for(provider.synced.wait(), WAIT)
            clients.append(Client(nb))
        yield clients


TRANSPORTS = {"runtimed": runtimed_clients, "baseline": baseline_clients}


async def serve_baseline(port_file: Path) -> None:
    """The baseline server: one pycrdt-websocket room per path, on 127.0.0.1."""
    from pycrdt.websocket import WebsocketServer
    from websockets.asyncio.server import ServerConnection, serve

    async with WebsocketServer(auto_clean_rooms=False) as rooms:

        async def handler(ws: ServerConnection) -> None:
            if not nodelay(ws):
                raise SystemExit("baseline server socket lacks TCP_NODELAY")
            assert ws.request is not None
            await rooms.serve(WsChannel(ws, ws.request.path))

        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            port_file.write_text(str(port))
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()


# --- the helper process: the 18 extra receivers ------------------------------------------


async def helper(transport: str, target: str, n: int) -> None:
    """Hold ``n`` replicas; after "start", print ``k`` once all have seen ``k`` updates; on
    "stop", print every arrival time as JSON."""
    loop = asyncio.get_running_loop()
    async with TRANSPORTS[transport](target, n) as clients:
        arrivals = [Arrivals(c.nb.doc) for c in clients]
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # "start"
        for a in arrivals:
            a.reset()
        print("started", flush=True)
        stop = asyncio.ensure_future(loop.run_in_executor(None, sys.stdin.readline))
        k = 0
        while not stop.done():
            k += 1
            waits = asyncio.gather(*(a.wait(k) for a in arrivals))
            done, _ = await asyncio.wait({waits, stop}, return_when=asyncio.FIRST_COMPLETED)
            if waits in done:
                waits.result()
                print(k, flush=True)
            else:
                waits.cancel()
                with contextlib.suppress(BaseException):
                    await waits
        print(json.dumps([a.times for a in arrivals]), flush=True)


class HelperProcess:
    def __init__(self, transport: str, target: str, n: int) -> None:
        self.argv = [sys.executable, __file__, "--helper", transport, target, str(n)]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, limit=2**24
        )
        await self.expect("ready", 60)

    async def line(self, timeout: float = WAIT) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise SystemExit(f"helper exited ({await self.proc.wait()})")
        return raw.decode().strip()

    async def expect(self, want: str, timeout: float = WAIT) -> None:
        got = await self.line(timeout)
        if got != want:
            raise SystemExit(f"helper said {got!r}, expected {want!r}")

    async def tell(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{text}\n".encode())
        await self.proc.stdin.drain()

    async def finish(self) -> list[list[float]]:
        await self.tell("stop")
        while (text := await self.line(30)).isdigit():
            pass
        times: list[list[float]] = json.loads(text)
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), 30)
        return times

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


# --- edit latency --------------------------------------------------------------------


@dataclass
class Latency:
    b: list[float]  # ms, A -> B
    slowest: list[float]  # ms, A -> last of all receivers


async def edit_latency(transport: str, target: str, n_clients: int, n_edits: int) -> Latency:
    extra = HelperProcess(transport, target, n_clients - 2) if n_clients > 2 else None
    warmup = 20
    try:
        async with TRANSPORTS[transport](target, 2) as (a, b):
            if extra is not None:
                await extra.start()
            b_arrivals = Arrivals(b.nb.doc)
            created = 0
            if not len(a.nb.cells):
                a.nb.insert_cell(None, "")
                created = 1
                await b_arrivals.wait(1)
            text: Text = a.nb.cells[0]["source"]
            for i in range(warmup):
                text.insert(len(text), "w")
                await b_arrivals.wait(created + i + 1)
            await asyncio.sleep(0.2)  # the helper's replicas catch up on the warm-up
            b_arrivals.reset()
            if extra is not None:
                await extra.tell("start")
                await extra.expect("started")
            starts = []
            for k in range(1, n_edits + 1):
                starts.append(clock())
                text.insert(len(text), "x")
                await b_arrivals.wait(k)
                if extra is not None:
                    await extra.expect(str(k))
            others = await extra.finish() if extra is not None else []
            want = str(text)
            await asyncio.sleep(0.05)
            if str(b.nb.cells[0]["source"]) != want:
                raise SystemExit(f"{transport}: B's replica diverged from A's")
    finally:
        if extra is not None:
            await extra.kill()
    b_ms = [(t - s) * 1000 for s, t in zip(starts, b_arrivals.times, strict=True)]
    slowest = [
        (max([b_arrivals.times[k], *(times[k] for times in others)]) - starts[k]) * 1000
        for k in range(n_edits)
    ]
    return Latency(b_ms, slowest)


# --- processes under test ---------------------------------------------------------------


class BaselineServer:
    def __init__(self, tmp: Path) -> None:
        self.port_file = tmp / "baseline.port"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--baseline-server", str(self.port_file)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self.port_file.exists() or not self.port_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the baseline server did not start")
            time.sleep(0.01)
        self.url = f"ws://127.0.0.1:{self.port_file.read_text()}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- opening a big notebook --------------------------------------------------------------


def write_notebook(path: Path, n_cells: int) -> None:
    """A realistic notebook: 70 % code cells with stream and result outputs, 30 % markdown."""
    import nbformat
    from nbformat import v4

    cells = []
    for i in range(n_cells):
        if i % 10 < 7:
            cell = v4.new_code_cell(
                f"import math\n\ndef f_{i}(x):\n    return math.sqrt(x) * {i}\n\nf_{i}({i})\n",
                execution_count=i + 1,
                outputs=[
                    v4.new_output("stream", name="stdout", text=f"computing {i}\n" * 3),
                    v4.new_output(
                        "execute_result",
                        data={"text/plain": repr(i**0.5 * i)},
                        execution_count=i + 1,
                    ),
                ],
            )
        else:
            cell = v4.new_markdown_cell(
                f"## Section {i}\n\nSome *prose* about step {i}, with a list:\n\n- one\n- two\n"
            )
        cells.append(cell)
    nb = v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    nbformat.write(nb, str(path))


def open_once(path: Path, socket_path: Path, n_cells: int) -> tuple[float, Any]:
    """Seconds from ``Session.open`` to a connected session holding every cell."""
    from runtimed import Session

    started = time.perf_counter()
    s = Session.open(path, socket_path=socket_path)
    s.connect()
    n = len(s.document.cells)
    elapsed = time.perf_counter() - started
    if n != n_cells:
        s.close()
        raise SystemExit(f"opened {path.name} with {n} cells, expected {n_cells}")
    return elapsed, s


def open_times(
    tmp: Path, socket_path: Path, n_files: int, n_warm: int
) -> tuple[list[float], list[float]]:
    """Cold opens (one per fresh file, the daemon loads it) and warm opens (room in memory,
    held by another session), in ms."""
    cold, warm = [], []
    for i in range(n_files):
        path = tmp / f"big-{i}.ipynb"
        write_notebook(path, 1000)
        elapsed, holder = open_once(path, socket_path, 1000)
        cold.append(elapsed)
        try:
            if i == 0:
                for _ in range(n_warm):
                    elapsed, s = open_once(path, socket_path, 1000)
                    s.close()
                    warm.append(elapsed)
        finally:
            holder.close()
    return [c * 1000 for c in cold], [w * 1000 for w in warm]


# --- main ---------------------------------------------------------------------------------


def report(name: str, lat: list[float], targets: bool) -> str:
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    line = f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {max(lat):6.2f} ms"
    if targets:
        ok = p50 < TARGETS["p50_ms"] and p99 < TARGETS["p99_ms"]
        line += f"   [target p50 < 2, p99 < 10: {verdict(ok)}]"
    return f"  {name:<40}{line}"


async def latency_figures(socket_path: Path, baseline_url: str, n_edits: int) -> None:
    results: dict[tuple[str, int], Latency] = {}
    for n_clients in (2, 20):
        for transport, target in (("runtimed", str(socket_path)), ("baseline", baseline_url)):
            results[transport, n_clients] = await edit_latency(
                transport, target, n_clients, n_edits
            )
    print(f"edit on A visible on B ({n_edits} edits, one character each):")
    for n_clients in (2, 20):
        r, b = results["runtimed", n_clients], results["baseline", n_clients]
        cases: list[tuple[str, Callable[[Latency], list[float]]]] = [
            ("B", lambda x: x.b),
        ]
        if n_clients > 2:
            cases.append(("slowest of 19", lambda x: x.slowest))
        for what, pick in cases:
            label = f"{n_clients} clients, {what}"
            print(report(f"runtimed  {label}", pick(r), targets=True))
            print(report(f"baseline  {label}", pick(b), targets=False))
            r50, b50 = percentile(pick(r), 50), percentile(pick(b), 50)
            r99, b99 = percentile(pick(r), 99), percentile(pick(b), 99)
            print(
                f"  {'ratio runtimed/baseline':<40}p50 {r50 / b50:6.2f}     p99 {r99 / b99:6.2f}"
                f"   [target <= 1: {verdict(r50 <= b50 and r99 <= b99)}]"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="quick run for CI")
    parser.add_argument("--edits", type=int, default=None, help="edits per case (1000)")
    parser.add_argument("--helper", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.helper:
        transport, target, n = args.helper
        asyncio.run(helper(transport, target, int(n)))
        return 0
    if args.baseline_server:
        asyncio.run(serve_baseline(Path(args.baseline_server)))
        return 0

    n_edits = args.edits or (30 if args.smoke else 1000)
    tmp = Path(tempfile.mkdtemp(prefix="runtimed-bench-sync-"))
    os.environ.pop("RUNTIMED_SOCKET_PATH", None)
    daemon = bench_daemon(tmp / "cache", "--uv-pool-size", "0", "--conda-pool-size", "0")
    server = BaselineServer(tmp)
    try:
        print(
            f"runtimed sync bench ({'smoke' if args.smoke else 'full'}), python "
            f"{sys.version.split()[0]}, {os.cpu_count()} cpus"
        )
        daemon.start()
        server.start()
        asyncio.run(latency_figures(daemon.socket, server.url, n_edits))
        server.stop()
        print("  (baseline: pycrdt-websocket WebsocketServer + websockets, TCP_NODELAY on)")
        cold, warm = open_times(tmp, daemon.socket, 1 if args.smoke else 3, 2 if args.smoke else 10)
        cold_ms, warm_ms = statistics.median(cold), statistics.median(warm)
        ok = cold_ms < TARGETS["open_ms"] and warm_ms < TARGETS["open_ms"]
        colds = ", ".join(f"{c:.0f}" for c in cold)
        print(
            f"open a 1,000-cell .ipynb to full state (Session.open + connect): "
            f"cold {cold_ms:.0f} ms (median of {len(cold)}: {colds}), warm "
            f"{warm_ms:.0f} ms (median of {len(warm)}, max {max(warm):.0f})   "
            f"[target < 300 ms: {verdict(ok)}]"
        )
    finally:
        server.stop()
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
