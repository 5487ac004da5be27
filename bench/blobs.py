"""Blob bench: a cell printing 100 MB, and edit latency while another cell streams.

Figures:
- a cell printing 100 MB in 1 MB flushed writes (``--smoke``: 2 MB): daemon peak RSS
  (target < 250 MB; one single 100 MB IOPub message costs ~5x its size whatever we do) and wall
  time through runtimed (run to resolved ``ExecutionResult.stdout``) vs raw jupyter_client
  on the same kind of kernel (ipykernel, collecting the stream from IOPub);
- a second client's edit latency (``set_source`` round trip) while another cell streams
  output (target: p99 < 20 ms).

Everything lives in a temp dir; the daemon and the raw kernel are stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtimed
from harness import bench_daemon, own_uv_cache, percentile, verdict

TARGETS = {"rss_mb": 250.0, "edit_p99_ms": 20.0}
LINE = "x" * 99 + "\n"


def print_code(megabytes: int) -> str:
    return (
        "import sys\n"
        f"_chunk = {LINE!r} * 10_000\n"  # 1,000,000 chars
        f"for _ in range({megabytes}):\n"
        "    sys.stdout.write(_chunk)\n"
        "    sys.stdout.flush()\n"
    )


def stream_code(seconds: float) -> str:
    return (
        "import time\n_t = time.time()\n"
        f"while time.time() - _t < {seconds}:\n"
        "    print('y' * 200)\n    time.sleep(0.0005)\n"
    )


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return psutil.Process(pid).memory_info().rss / 2**20


def raw_jupyter_client(code: str, tmp: Path) -> tuple[float, int]:
    """Run ``code`` on a plain ipykernel through jupyter_client; (seconds, chars received)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3", connection_file=str(tmp / "raw-kernel.json"))
    km.start_kernel(cwd=str(tmp))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        started = time.perf_counter()
        parts: list[str] = []
        msg_id = kc.execute(code)
        while True:
            msg = kc.get_iopub_msg(timeout=300)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                parts.append(msg["content"]["text"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        text = "".join(parts)
        return time.perf_counter() - started, len(text)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def edit_latencies(socket: Path, stream_secs: float) -> tuple[list[float], bool]:
    """B edits its own cell while A's cell streams; B's set_source round trips, in ms."""
    a = runtimed.Session("bench-edit", socket_path=socket).connect()
    b = runtimed.Session("bench-edit", socket_path=socket).connect()
    try:
        a.run("1")  # the kernel is up before timing
        b_cell = b.create_cell("")
        cell = a.create_cell(stream_code(stream_secs))
        execution = a.queue_cell(cell)
        time.sleep(0.3)  # streaming has begun
        latencies: list[float] = []
        deadline = time.monotonic() + stream_secs - 0.5
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            b.set_source(b_cell, f"edit {i}")
            latencies.append((time.perf_counter() - started) * 1000)
            i += 1
            time.sleep(0.01)
        result = a.wait_for_execution(execution, timeout=120)
        streamed = result.success and len(result.stdout) > 0
        return latencies, streamed
    finally:
        a.close()
        b.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="quick run for CI (2 MB)")
    parser.add_argument("--megabytes", type=int, default=None, help="MB to print (default 100)")
    parser.add_argument("--uv-cache", help="use this uv cache instead of a fresh temp one")
    args = parser.parse_args()
    megabytes = args.megabytes or (2 if args.smoke else 100)
    stream_secs = 1.5 if args.smoke else 10.0

    tmp = Path(tempfile.mkdtemp(prefix="runtimed-bench-blobs-"))
    own_uv_cache(tmp / "uv-cache", args.uv_cache)
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    os.environ.pop("RUNTIMED_SOCKET_PATH", None)
    d = bench_daemon(tmp / "cache", "--uv-pool-size", "1", "--conda-pool-size", "0")
    try:
        print(
            f"runtimed blob bench ({'smoke' if args.smoke else 'full'}), python "
            f"{sys.version.split()[0]}, {os.cpu_count()} cpus"
        )
        d.start()
        d.wait_pool("uv", 1, timeout=600, settled=True)
        assert d.proc is not None
        pid = d.proc.pid

        # 1. one cell printing N MB, through runtimed
        s = runtimed.Session("bench-print", socket_path=d.socket).connect()
        s.run("1")  # kernel up
        base_rss = psutil.Process(pid).memory_info().rss / 2**20
        stop = threading.Event()
        sampled = [base_rss]

        def sample() -> None:
            while not stop.is_set():
                sampled.append(psutil.Process(pid).memory_info().rss / 2**20)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        result = s.run(print_code(megabytes), timeout=600)
        ours = time.perf_counter() - started
        stop.set()
        sampler.join()
        got = len(result.stdout)
        expected = megabytes * 1_000_000
        doc_chars = len(str(s.get_cell(result.cell_id).outputs))
        s.close()
        peak = max(max(sampled), peak_rss_mb(pid))

        # 2. the same code on a raw jupyter_client kernel
        raw, raw_chars = raw_jupyter_client(print_code(megabytes), tmp)

        # 3. edit latency while another cell streams
        latencies, streamed = edit_latencies(d.socket, stream_secs)
        d.stop()
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        f"cell printing {megabytes} MB: {ours:.2f} s through runtimed (stdout resolved, "
        f"{got:,} chars {'ok' if got == expected else 'WRONG'}), raw jupyter_client "
        f"{raw:.2f} s ({raw_chars:,} chars); ratio {ours / raw:.2f}x"
    )
    print(f"document size of that cell's outputs: {doc_chars:,} chars (blob references)")
    print(
        f"daemon peak RSS: {peak:.1f} MB (before the cell: {base_rss:.1f} MB)   "
        f"[target < {TARGETS['rss_mb']:.0f} MB: {verdict(peak < TARGETS['rss_mb'])}]"
    )
    print(
        f"second client's edit latency while a cell streams ({len(latencies)} edits over "
        f"{stream_secs:.0f} s): p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.2f} ms"
        f"   [target p99 < {TARGETS['edit_p99_ms']:.0f} ms: "
        f"{verdict(p99 < TARGETS['edit_p99_ms'] and streamed)}]"
    )
    return 0 if got == expected else 1


if __name__ == "__main__":
    sys.exit(main())
