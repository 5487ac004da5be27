"""Issue 11's attacks, re-measured: each "Why" bullet of the issue against a real daemon,
with what the issue measured before the change beside what happens now.

    python bench/attacks.py            # full sizes (a 200 MB notebook, 1,100 connections)
    python bench/attacks.py --smoke    # small sizes, for CI

The two bullets with benches of their own: one huge print (bench/one_print.py) and
edits retried across a daemon restart (bench/soak.py: lost and duplicated edits).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import psutil

import runtimed
from harness import DaemonProcess, OtherRoom, PeakRss, bench_daemon, verdict, wait_settled
from runtimed.client.blobs import BlobClient
from runtimed.client.settings_client import SettingsClient
from runtimed.protocol.framing import PREAMBLE, encode_frame

SMOKE = False


def line(what: str, before: str, now: str, ok: bool) -> None:
    print(f"- {what}\n    before: {before}\n    now:    {now}  {verdict(ok)}", flush=True)


def raw_connection(d: DaemonProcess, handshake: dict[str, Any]) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX)
    conn.settimeout(30)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    conn.connect(str(d.socket_path))
    conn.sendall(PREAMBLE + encode_frame(json.dumps(handshake).encode()))
    assert b'"ok":true' in conn.recv(65536)
    return conn


def read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def uint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes([*out, n])


def value(result: Any) -> str:
    """The text/plain of a run's last result."""
    return str(result.display_data[-1].data["text/plain"]) if result.display_data else ""


def rss(d: DaemonProcess) -> int:
    return d.process.memory_info().rss


# --- the bullets ----------------------------------------------------------------------


def deep_nesting(d: DaemonProcess, other: runtimed.Session) -> None:
    depth = 50_000
    body = b"\x01\x01\x07\x00\x08\x01\x05cells\x01" + b"\x75\x01" * depth + b"\x7e\x00"
    update = b"\x00\x02" + uint(len(body)) + body
    codes = []
    for channel in ("notebook_sync", "settings_sync"):
        conn = raw_connection(d, {"channel": channel, "notebook_id": "attacked"})
        conn.sendall(encode_frame(b"\x00" + update))
        reply = read_all(conn)
        codes.append("update_refused" if b'"code":"update_refused"' in reply else "no error")
        conn.close()
    alive = d.proc is not None and d.proc.poll() is None and value(other.run("1+1")) == "2"
    line(
        f"a {len(update) // 1000} KB update nested {depth:,} deep (notebook, settings)",
        "segfault: the daemon and every room's kernel die",
        f"{' / '.join(codes)}, sender disconnected; daemon alive, another room ran 1+1: {alive}",
        alive and codes == ["update_refused"] * 2,
    )


def poisoned_cells(d: DaemonProcess) -> None:
    # An Any item in root "cells" holding the integer 42: 13 bytes of update.
    update = b"\x01\x01\x09\x00\x08\x01\x05cells\x01\x7d\x2a\x00"
    message = b"\x00\x02" + uint(len(update)) + update
    with runtimed.Session("poisoned", socket_path=d.socket_path) as s:
        s.create_cell("x = 1")
        conn = raw_connection(d, {"channel": "notebook_sync", "notebook_id": "poisoned"})
        conn.sendall(encode_frame(b"\x00" + message))
        s.sync(10)
        time.sleep(0.2)
        cells = [c.source for c in s.get_cells()]
        saved = s.save(str(Path(tempfile.mkdtemp()) / "poisoned.ipynb"))
        conn.close()
    nbformat.validate(nbformat.read(saved, as_version=4))
    with runtimed.Session("poisoned", socket_path=d.socket_path) as again:
        reopened = [c.source for c in again.get_cells()]
    line(
        f"a {len(message)}-byte update putting 42 into cells",
        "accepted and persisted: get_cells()/save() fail, every later client is disconnected",
        f"repaired for everyone: cells {cells}, save valid nbformat, a new client reads {reopened}",
        cells == reopened == ["x = 1"],
    )


def huge_notebook(d: DaemonProcess, tmp: Path) -> None:
    mb = 1 if SMOKE else 50
    nb = nbformat.v4.new_notebook()
    for i in range(4):
        cell = nbformat.v4.new_code_cell(f"big_{i}()")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="z" * 99 + "\n")]
        cell.outputs[0].text *= mb * 10_000
        nb.cells.append(cell)
    png = base64.b64encode(os.urandom(2_000_000)).decode()
    nb.cells[0].outputs.append(nbformat.v4.new_output("display_data", data={"image/png": png}))
    path = tmp / "huge.ipynb"
    nbformat.write(nb, path)
    size = path.stat().st_size
    other = OtherRoom(d)
    wait_settled(d, kernels=0, uv=1)
    other.mark()
    with PeakRss(d) as peak:
        started = time.perf_counter()
        with runtimed.Session.open(path, socket_path=d.socket_path) as s:
            seconds = time.perf_counter() - started
            doc_bytes = len(s.document.doc.get_update())
    worst = max(other.stop(), default=0.0) * 1000
    line(
        f"opening a {size / 1e6:.0f} MB .ipynb (large inline outputs)",
        "fails (initial sync over the 64 MiB frame cap); daemon +810 MB, loop stalled ~1 s",
        f"opens in {seconds:.1f} s, document {doc_bytes / 1000:.0f} KB; daemon peak "
        f"+{peak.grown / 2**20:.0f} MB; another room's slowest run('1') meanwhile {worst:.0f} ms",
        doc_bytes < 100_000 and worst < 1000,
    )


def partial_frames(d: DaemonProcess) -> None:
    count, size = 9, (2 if SMOKE else 60) * 2**20
    base = rss(d)
    conns, refused = [], 0
    for _ in range(count):
        conn = raw_connection(d, {"channel": "notebook_sync", "notebook_id": "partial"})
        try:
            conn.sendall(len(b"x" * 0 + b"\x00" * size).to_bytes(4, "big"))
            conn.sendall(b"\x00" * (size - 1024))  # all but the end of one frame
        except OSError:
            refused += 1
        conns.append(conn)
    time.sleep(1)
    grown = (rss(d) - base) / 2**20
    alive = True
    with runtimed.Session("partial-ok", socket_path=d.socket_path) as s:
        alive = s.create_cell("fine") is not None
    for conn in conns:
        conn.close()
    line(
        f"{count} connections each holding {size // 2**20} MB of an unfinished frame",
        "daemon 59 MB -> 1.2 GB",
        f"daemon +{grown:.0f} MB (budget 512 MiB of partial frames daemon-wide); "
        f"{refused} cut off; others served: {alive}",
        grown < 600 and alive,
    )


def awareness(d: DaemonProcess) -> None:
    slow = [raw_connection(d, {"channel": "notebook_sync", "notebook_id": "presence"})
            for _ in range(8)]  # fmt: skip
    base = rss(d)
    sender = raw_connection(d, {"channel": "notebook_sync", "notebook_id": "presence"})
    sender.sendall(encode_frame(b"\x04" + b"p" * 60_000_000, 2**30))
    refused = b'"code":"frame_too_large"' in read_all(sender)
    sender = raw_connection(d, {"channel": "notebook_sync", "notebook_id": "presence"})
    for i in range(100):
        sender.sendall(encode_frame(b"\x04" + bytes([i]) * 1_000_000))
    with runtimed.Session("presence", socket_path=d.socket_path) as s:
        s.create_cell("after")  # every frame before it was handled
    grown = (rss(d) - base) / 2**20
    for conn in [*slow, sender]:
        conn.close()
    line(
        "presence: one 60 MB awareness frame, then 100 x 1 MB, with 8 peers that never read",
        "60 MB queued to every slow reader (658 MB with 8 peers)",
        f"60 MB frame refused: {refused}; 100 MB of presence to 8 slow peers: daemon "
        f"+{grown:.0f} MB",
        refused and grown < 100,
    )


def many_connections(d: DaemonProcess) -> None:
    n = 150 if SMOKE else 1100
    log = d.cache_dir / "runtimed.log"
    log_before = log.stat().st_size if log.exists() else 0
    held, refusals = [], 0
    for _ in range(n):
        conn = socket.socket(socket.AF_UNIX)
        conn.settimeout(10)
        conn.connect(str(d.socket_path))
        conn.sendall(PREAMBLE + encode_frame(b'{"channel": "pool"}'))
        reply = conn.recv(65536)
        if b"too_many_connections" in reply:
            refusals += 1
            conn.close()
        else:
            held.append(conn)
    limits = Path(f"/proc/{d.process.pid}/limits").read_text()
    soft = next(x for x in limits.splitlines() if "open files" in x).split()[3]
    with d.client() as c:
        c.ping()
    served = True
    log_growth = (log.stat().st_size - log_before) / 1000 if log.exists() else 0.0
    for conn in held:
        conn.close()
    line(
        f"{n:,} idle connections",
        "1,024 descriptors run out at ~990: new clients fail, 552,655 tracebacks (252 MB) "
        "in the log",
        f"descriptor soft limit {soft}; {len(held)} held, {refusals} refused clearly; a new "
        f"client served: {served}; log +{log_growth:.0f} KB",
        served and log_growth < 1000,
    )


def alive(pid: int) -> bool:
    """The process runs (a zombie has exited; it can also exit while we look)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def orphans(d: DaemonProcess) -> None:
    """Kills ``d`` (kill -9)."""
    d.wait_pool("uv", 1)
    with runtimed.Session(socket_path=d.socket_path) as s:
        r = s.run(
            "import subprocess\n"
            "p = subprocess.Popen(['sleep', '1000'], start_new_session=True)\np.pid"
        )
        pid = int(value(r) or "0")
        # No env build in flight: uv would outlive the daemon, writing into a dir that is
        # removed next (seconds of cleanup).
        with SettingsClient(d.socket_path) as settings:
            settings.set("uv.pool_size", 0)
        d.wait_pool("uv", 0, settled=True)
        d.kill9()
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        gone = not alive(pid)
        waited = 10 - max(0.0, deadline - time.monotonic())
    line(
        "a cell's `sleep` in its own session, then kill -9 of the daemon",
        "survives shutdown_kernel, eviction, daemon stop and kill -9",
        f"gone {waited:.1f} s after the kill: {gone} (subreaper guard; "
        "tests/test_kernel_orphans.py covers the other ways)",
        gone,
    )


def blob_http(d: DaemonProcess) -> None:
    with d.client() as c:
        port = c.daemon_info().blob_port
    blobs = BlobClient(d.socket_path)
    html = blobs.put(b"<script>alert(1)</script>", "text/html")
    try:
        blobs.put(b"x", "text/html\r\nX-Evil: 1")
        crlf = "accepted"
    except runtimed.RuntimedError as exc:
        crlf = exc.code
    blobs.close()

    def get(path: str, host: str, **headers: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        return conn.getresponse()

    rebinding = get(f"/blob/{html}", "evil.example:80").status
    served = get(f"/blob/{html}", f"127.0.0.1:{port}")
    csp = served.getheader("Content-Security-Policy") or ""
    suffix = get(f"/blob/{html}", f"127.0.0.1:{port}", Range="bytes=-0").status
    line(
        "blob HTTP: a foreign Host, kernel HTML, a CR/LF media type, `Range: bytes=-0`",
        "served to any Host; HTML active on the blob origin; CR/LF accepted; 206",
        f"Host evil.example -> {rebinding}; HTML with CSP '{csp}'; CR/LF -> {crlf}; "
        f"bytes=-0 -> {suffix}",
        rebinding == 421 and "sandbox" in csp and crlf != "accepted" and suffix == 416,
    )


def relative_paths(d: DaemonProcess, tmp: Path) -> None:
    work = tmp / "cwd"
    work.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), work / "rel.ipynb")
    here = os.getcwd()
    os.chdir(work)
    try:
        with runtimed.Session.open("rel.ipynb", socket_path=d.socket_path) as s:
            opened = s.path
    finally:
        os.chdir(here)
    with runtimed.Session(socket_path=d.socket_path) as s:
        try:
            s.request("save", path="relative.ipynb")
            raw = "accepted"
        except runtimed.RuntimedError as exc:
            raw = exc.code
    line(
        "open/save with relative paths",
        "resolved against the daemon's working directory",
        f"the client resolves them against its own ({opened}); a relative path sent raw -> {raw}",
        opened == str(work / "rel.ipynb") and raw != "accepted",
    )


def runtime_doc(d: DaemonProcess) -> None:
    runs = 20 if SMOKE else 1200
    sizes = {}
    with runtimed.Session(socket_path=d.socket_path) as s:
        cell = s.create_cell("1")
        for i in range(1, runs + 1):
            s.execute_cell(cell)
            if i in (runs // 2, runs):
                time.sleep(0.3)
                sizes[i] = len(s.runtime_doc.get_update())
    half, full = sizes[runs // 2], sizes[runs]
    line(
        f"the runtime document after {runs // 2:,} and {runs:,} runs",
        "every execution record kept forever (~225 bytes each)",
        f"{half / 1000:.0f} KB and {full / 1000:.0f} KB (the last 500 records, rebuilt "
        "without tombstones every 500 deletions; history is in SQLite)",
        full < half * 1.2 or runs <= 1000,
    )


def on_own_daemon(bullet: Callable[[DaemonProcess], None], cache: Path, *args: str) -> None:
    d = bench_daemon(cache, *args).start()
    try:
        bullet(d)
    finally:
        d.stop()


def main() -> None:
    global SMOKE
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="small sizes, for CI")
    SMOKE = parser.parse_args().smoke
    with tempfile.TemporaryDirectory(prefix="runtimed-bench-attacks-") as name:
        tmp = Path(name)
        d = bench_daemon(tmp / "cache", "--uv-pool-size", "2").start()
        try:
            d.wait_pool("uv", 2)
            with runtimed.Session(socket_path=d.socket_path) as other:
                other.run("1")
                deep_nesting(d, other)
            poisoned_cells(d)
            huge_notebook(d, tmp)
            partial_frames(d)
            awareness(d)
            blob_http(d)
            relative_paths(d, tmp)
            runtime_doc(d)
            if SMOKE:  # one daemon for the whole smoke run (orphans kills it: last)
                many_connections(d)
                orphans(d)
        finally:
            d.stop()
        if not SMOKE:
            on_own_daemon(many_connections, tmp / "conns", "--uv-pool-size", "0")
            on_own_daemon(orphans, tmp / "orphans", "--uv-pool-size", "1")
    print("- one 200 MB print: python bench/one_print.py; edits across a restart: "
          "python bench/soak.py")  # fmt: skip


if __name__ == "__main__":
    main()
