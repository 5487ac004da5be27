"""MCP figures (issue 14).

    python bench/mcp.py            # full run
    python bench/mcp.py --smoke    # quick run for CI

1. Tool-call latency of execute_cell on a cell `1+1` through `runt mcp` (the SDK's own
   stdio client, as an MCP host drives it) vs `Session.execute_cell` on the same cell of the
   same notebook and kernel: p50 / p99. The two take turns in blocks of 10 runs, so both
   see the same machine. Also the floor of any MCP call here: get_dependencies, answered
   from the server's replica without asking the daemon (JSON-RPC over stdio + the SDK).
2. `runt mcp` start to first tool answer: spawn, MCP initialize, list_notebooks answered.
3. A hostile regex (issue 31): replace_regex with `(a+)+$` on 'a' * 40 + 'b' (Python's `re`
   never ends on it): how long until it fails with regex_timeout (the bound is 1 s), and
   the latency of get_all_cells calls made meanwhile on the same connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is bench/mcp.py: while bench/ leads sys.path, `import mcp` would import it
# instead of the SDK. Import the SDK without bench/, then put bench/ back for the harness.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

sys.path.insert(0, str(_BENCH))
import runtimed  # noqa: E402
from harness import bench_daemon, percentile, verdict  # noqa: E402

RUNT = Path(sys.executable).with_name("runt")


def server_params(socket: Path, cwd: Path) -> StdioServerParameters:
    command = [str(RUNT)] if RUNT.exists() else [sys.executable, "-m", "runtimed.cli.runt_cli"]
    return StdioServerParameters(
        command=command[0],
        args=[*command[1:], "mcp", "--socket", str(socket)],
        env={"RUNTIMED_CACHE_DIR": str(cwd / "mcp-cache")},
        cwd=cwd,
    )


async def call(client: ClientSession, tool: str, **args: Any) -> Any:
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return result.structured_content


async def start_to_first_answer(params: StdioServerParameters, log: Any) -> float:
    started = time.perf_counter()
    async with stdio_client(params, errlog=log) as (r, w), ClientSession(r, w) as client:
        await client.initialize()
        await call(client, "list_notebooks")
        return time.perf_counter() - started


async def timed(client: ClientSession, tool: str, **args: Any) -> float:
    started = time.perf_counter()
    done = await call(client, tool, **args)
    assert tool != "execute_cell" or done["status"] == "done"
    return (time.perf_counter() - started) * 1000


async def latencies(
    params: StdioServerParameters, socket: Path, runs: int, log: Any
) -> tuple[list[float], list[float], list[float]]:
    mcp_ms: list[float] = []
    session_ms: list[float] = []
    floor_ms: list[float] = []
    async with stdio_client(params, errlog=log) as (r, w), ClientSession(r, w) as client:
        await client.initialize()
        info = await call(client, "create_notebook")
        cell = (await call(client, "create_cell", source="1+1", run=True))["cell_id"]
        with runtimed.Session(info["notebook_id"], socket_path=socket) as s:
            assert s.execute_cell(cell).display_data[0].data["text/plain"] == "2"

            def session_block() -> list[float]:
                times = []
                for _ in range(10):
                    t = time.perf_counter()
                    s.execute_cell(cell)
                    times.append((time.perf_counter() - t) * 1000)
                return times

            for _ in range(10):  # warm both paths
                await call(client, "execute_cell", cell_id=cell)
            await asyncio.to_thread(session_block)
            for _ in range(runs // 10):
                mcp_ms += [await timed(client, "execute_cell", cell_id=cell) for _ in range(10)]
                session_ms += await asyncio.to_thread(session_block)
                floor_ms += [await timed(client, "get_dependencies") for _ in range(10)]
    return mcp_ms, session_ms, floor_ms


async def hostile_regex(params: StdioServerParameters, log: Any) -> tuple[float, list[float]]:
    """Seconds until a catastrophic pattern fails; get_all_cells latencies (ms) meanwhile."""
    async with stdio_client(params, errlog=log) as (r, w), ClientSession(r, w) as client:
        await client.initialize()
        await call(client, "create_notebook", start_kernel=False)
        cell = (await call(client, "create_cell", source="a" * 40 + "b"))["cell_id"]
        for _ in range(2):  # both pattern workers started: time the pattern only
            await call(client, "replace_regex", cell_id=cell, pattern=r"b\Z", content="b")
        started = time.perf_counter()
        args = {"cell_id": cell, "pattern": r"(a+)+$", "content": "x"}
        hostile = asyncio.create_task(client.call_tool("replace_regex", args))
        meanwhile = []
        while not hostile.done():
            meanwhile.append(await timed(client, "get_all_cells"))
        failed_after = time.perf_counter() - started
        result = await hostile
        assert result.is_error and "regex_timeout" in str(result.content)
    return failed_after, meanwhile


async def run(args: argparse.Namespace, base: Path, socket: Path) -> bool:
    runs, starts = (20, 1) if args.smoke else (500, 5)
    params = server_params(socket, base)
    with (base / "mcp-stderr.log").open("w") as log:
        start_times = [await start_to_first_answer(params, log) for _ in range(starts)]
        mcp_ms, session_ms, floor_ms = await latencies(params, socket, runs, log)
        failed_after, meanwhile = await hostile_regex(params, log)
    p50, p99 = percentile(mcp_ms, 50), percentile(mcp_ms, 99)
    s50, s99 = percentile(session_ms, 50), percentile(session_ms, 99)
    f50, f99 = percentile(floor_ms, 50), percentile(floor_ms, 99)
    print(f"execute_cell('1+1') on a running kernel, {runs} runs each (interleaved):")
    print(f"  through runt mcp (SDK stdio client): p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    print(f"  through Session.execute_cell:        p50 {s50:6.2f} ms  p99 {s99:6.2f} ms")
    print(f"  any MCP call (get_dependencies):     p50 {f50:6.2f} ms  p99 {f99:6.2f} ms")
    overhead = p50 - s50
    print(
        f"  MCP adds {overhead:.2f} ms at p50 ({p50 / s50:.2f}x), of which the SDK's round "
        f"trip is {f50:.2f} ms; target: adds < 2x that round trip {verdict(overhead < 2 * f50)}"
    )
    first = sorted(start_times)
    median = percentile(first, 50)
    print(f"runt mcp start to first tool answer ({starts} starts):")
    print(
        f"  median {median * 1000:6.0f} ms, best {first[0] * 1000:.0f} ms, "
        f"worst {first[-1] * 1000:.0f} ms (target < 3 s) {verdict(median < 3)}"
    )
    slowest = max(meanwhile)
    print("replace_regex '(a+)+$' on 'a' * 40 + 'b' (bound 1 s):")
    print(
        f"  failed with regex_timeout after {failed_after:.3f} s (target < 2 s) "
        f"{verdict(failed_after < 2)}"
    )
    print(
        f"  {len(meanwhile)} get_all_cells meanwhile: p50 {percentile(meanwhile, 50):.2f} ms, "
        f"slowest {slowest:.2f} ms (target < 200 ms) {verdict(slowest < 200)}"
    )
    return overhead < 2 * f50 and median < 3 and failed_after < 2 and slowest < 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few samples, for CI")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="runtimed-bench-mcp-"))
    os.environ.setdefault("UV_CACHE_DIR", str(base / "uv-cache"))
    daemon = bench_daemon(base / "cache", "--uv-pool-size", "1", "--conda-pool-size", "0")
    try:
        daemon.start()
        daemon.wait_pool("uv", 1, timeout=600, settled=True)
        ok = asyncio.run(run(args, base, daemon.socket))
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("all targets met" if ok else "some targets MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
