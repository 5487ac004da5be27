"""Widgets (issue 26): memory of 1,000 widgets, a client's change to the kernel, a flood.

    python bench/widgets.py            # 1,000 sliders, 200 changes, 100,000 updates
    python bench/widgets.py --smoke    # 1,000 sliders, 30 changes, 5,000 updates, no
                                       # other room (its env build alone takes seconds)

Prints, against a real daemon, ipykernel and ipywidgets:
- 1,000 IntSliders (3,000 models with their layouts and styles) in the runtime document:
  its encoded size and the daemon's RSS growth, against the same document empty;
- ``set_widget_state`` -> the kernel's observer, and -> a second Session's replica:
  p50/p99 over changes sent every 20 ms (a slider drag at 50 Hz), against ``run("1")``;
- a kernel flooding N updates: the document's growth (coalesced: target < 64 KB), the
  daemon's CPU per update, and another room's ``run("1")`` meanwhile against without.
The browser figure (a slider dragged in page A to the kernel and page B) needs the
widget manager in the web page, which is not built yet.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pycrdt import Map

import runtimed
from harness import bench_daemon, percentile, verdict, wait_settled
from runtimed.client.settings_client import SettingsClient

VIEW = "application/vnd.jupyter.widget-view+json"


def model_of(result: Any) -> str:
    assert result.success, result.message
    views = [o.data[VIEW] for o in result.outputs if o.data and VIEW in o.data]
    return str(views[-1]["model_id"])


def ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1e3:.1f} ms, p99 {percentile(values, 99) * 1e3:.1f} ms"


def memory(d: Any, s: runtimed.Session) -> None:
    empty = len(s.runtime_doc.get_update())
    rss = d.process.memory_info().rss
    s.run("import ipywidgets as w\nsliders = [w.IntSlider(value=i) for i in range(1000)]")
    started = time.perf_counter()
    models = s.widgets()
    read = time.perf_counter() - started
    size = len(s.runtime_doc.get_update())
    grown = d.process.memory_info().rss - rss
    print(f"1,000 IntSliders: {len(models)} models; runtime document {size / 1024:.0f} KB "
          f"({(size - empty) / 1000:.0f} B a slider with its layout and style; empty "
          f"{empty} B); daemon RSS +{grown / 2**20:.1f} MB; "
          f"Session.widgets() {read * 1e3:.0f} ms")  # fmt: skip


def changes(d: Any, s: runtimed.Session, count: int) -> None:
    code = (
        "import ipywidgets as w, time\ndrag = w.IntSlider(max=10**6)\nseen = []\n"
        "drag.observe(lambda c: seen.append((c['new'], time.time())), 'value')\ndrag"
    )
    model = model_of(s.run(code))
    other = runtimed.Session(s.notebook_id, socket_path=d.socket_path).connect()
    arrived: dict[int, float] = {}
    widgets = other.runtime_doc.get("widgets", type=Map)

    def on_change(event: Any) -> None:
        entry = widgets.get(model)
        if isinstance(entry, dict):
            arrived.setdefault(int(entry["state"]["value"]), time.time())

    widgets.observe(on_change)
    sent: dict[int, float] = {}
    for i in range(1, count + 1):
        sent[i] = time.time()
        s.set_widget_state(model, {"value": i})
        time.sleep(0.02)
    result = s.run("import json\nprint(json.dumps(seen))")
    seen = {int(v): t for v, t in json.loads(result.stdout)}
    to_kernel = [seen[i] - sent[i] for i in sent if i in seen]
    to_other = [arrived[i] - sent[i] for i in sent if i in arrived]
    round_trips = []
    for _ in range(count):
        started = time.perf_counter()
        s.run("1")
        round_trips.append(time.perf_counter() - started)
    other.close()
    print(f"set_widget_state every 20 ms, {count} changes: to the kernel's observer "
          f"{ms(to_kernel)} ({len(to_kernel)} seen); to a second Session {ms(to_other)} "
          f"({len(to_other)} seen); baseline run('1') {ms(round_trips)}")  # fmt: skip


class Bystander:
    """Another room's Session running ``run("1")`` in a loop on a thread; its kernel
    starts while the first phases run."""

    def __init__(self, d: Any) -> None:
        self.session = runtimed.Session(socket_path=d.socket_path)
        self.runs: list[tuple[float, float]] = []  # (end, duration)
        self._stop = threading.Event()
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        self.session.connect().run("1")
        self.started.set()
        while not self._stop.is_set():
            started = time.perf_counter()
            self.session.run("1")
            self.runs.append((time.perf_counter(), time.perf_counter() - started))

    def window(self, start: float, end: float) -> list[float]:
        return [dur for ended, dur in list(self.runs) if ended >= start and ended - dur <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.session.close()


def flood(d: Any, s: runtimed.Session, other: Bystander | None, updates: int) -> None:
    model = model_of(s.run("import ipywidgets as w\nf = w.IntSlider(max=10**7)\nf"))
    quiet: list[float] = []
    if other is not None:
        assert other.started.wait(300), "the other room's kernel did not start"
        with SettingsClient(d.socket_path) as settings:  # no env build competes from now on
            settings.set("uv.pool_size", 0)
        wait_settled(d, kernels=0, uv=0)
        start = time.perf_counter()
        time.sleep(3)
        quiet = other.window(start, time.perf_counter())
    before = len(s.runtime_doc.get_update())
    cpu = d.process.cpu_times()
    started = time.perf_counter()
    result = s.run(f"for i in range({updates}):\n    f.value = i", timeout=600)
    elapsed = time.perf_counter() - started
    busy = other.window(started, time.perf_counter()) if other is not None else []
    used = sum(d.process.cpu_times()[:2]) - sum(cpu[:2])
    assert result.success, result.message
    assert s.widgets()[model]["value"] == updates - 1
    growth = len(s.runtime_doc.get_update()) - before
    print(f"a kernel flooding {updates:,} updates ({elapsed:.1f} s): runtime document "
          f"+{growth} B (target < 64 KB) {verdict(growth < 65536)}; daemon CPU "
          f"{used / updates * 1e6:.0f} us an update")  # fmt: skip
    if other is None:
        print(
            "  (another room's run('1') meanwhile: not measured with --smoke, which builds one env)"
        )
        return
    print(f"  another room's run('1'): during the flood {ms(busy)}, max "
          f"{max(busy) * 1e3:.0f} ms over {len(busy)} runs; without {ms(quiet)}, max "
          f"{max(quiet) * 1e3:.0f} ms")  # fmt: skip
    print(f"  median slowdown {statistics.median(busy) / statistics.median(quiet):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="fewer changes and updates")
    args = parser.parse_args()
    count, updates = (30, 5_000) if args.smoke else (200, 100_000)
    timings = []
    with tempfile.TemporaryDirectory(prefix="runtimed-bench-widgets-") as tmp:
        started = time.perf_counter()
        d = bench_daemon(Path(tmp) / "cache", "--uv-pool-size", "1").start()
        try:
            d.wait_pool("uv", 1)
            timings.append(time.perf_counter() - started)
            with runtimed.Session(socket_path=d.socket_path) as s:
                s.run("1")
                # Another room's kernel takes the env the pool builds now (measured later).
                other = None if args.smoke else Bystander(d)
                memory(d, s)
                timings.append(time.perf_counter() - started)
                changes(d, s, count)
                timings.append(time.perf_counter() - started)
                flood(d, s, other, updates)
                timings.append(time.perf_counter() - started)
            if other is not None:
                other.close()
        finally:
            d.stop()
    print("(bench phases ended at " + ", ".join(f"{t:.1f}" for t in timings) + " s)")


if __name__ == "__main__":
    main()
