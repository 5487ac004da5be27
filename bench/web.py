"""The notebook page's figures (issue 25), in headless Chromium (tests/browser.py).

    python bench/web.py            # full run
    python bench/web.py --smoke    # quick run for CI (< 20 s)

1. Open a 1,000-cell notebook to interactive (``body[data-ready]``: synced, cells
   rendered or virtualized, command mode on the first cell), from the navigation's start
   (the page's ``runt:ready`` mark). Target < 500 ms.
2. A keystroke in page A to its character in page B's DOM (two browser contexts on one
   notebook; both clocks are the browser's): p50 / p99. Target p99 < 30 ms.
3. Shift-Enter on ``1+1`` to the ``Out`` rendered, with the kernel pool: p50. Target
   < 40 ms.
4. A cell printing 50 MB: the longest main-thread task while it runs and renders
   (PerformanceObserver ``longtask``). Target < 200 ms.

Baseline (full run only): the same notebook in JupyterLab (installed into a temp venv with
uv), navigation to its first cell's editor showing the source, in the same browser.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page

from harness import percentile, verdict, wait_settled

# isort: split
from browser import READY, WebDaemon, cell, web_daemon  # tests/, put on sys.path by harness

#: Records, in the page, when keys go down (capture phase: before the editor sees them).
KEY_CLOCK = """() => {
  window.__keys = [];
  document.addEventListener('keydown', (e) => {
    window.__keys.push([e.key, performance.timeOrigin + performance.now()]);
  }, true);
}"""
#: Records, in the page, each time the first cell's text grows: (length, epoch ms).
TEXT_CLOCK = """() => {
  window.__seen = [];
  const target = document.querySelectorAll('#app .jp-Cell')[0];
  const read = () => {  // the text, not remote carets' name labels
    const root = target.querySelector('.cm-content') || target;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let length = 0;
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.parentElement.closest('.cm-ySelectionCaret')) length += n.length;
    }
    return length;
  };
  let last = read();
  window.__base = last;
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    const length = read();
    if (length !== last) { last = length; window.__seen.push([length, now]); }
  }).observe(target, {subtree: true, childList: true, characterData: true});
}"""
#: When an execute_result with text "2" shows in cell i (epoch ms).
OUT_CLOCK = """(i) => { window.__out = new Promise((resolve) => {
  const target = document.querySelectorAll('#app .jp-Cell')[i];
  const done = () => {
    const out = target.querySelector('.jp-OutputArea-output[data-output-type="execute_result"]');
    return out && out.textContent.trim() === '2';
  };
  const observer = new MutationObserver(() => {
    if (done()) { observer.disconnect(); resolve(performance.timeOrigin + performance.now()); }
  });
  observer.observe(target, {subtree: true, childList: true, characterData: true});
}); }"""
LONG_TASKS = """() => {
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push(e.duration);
  }).observe({type: 'longtask', buffered: false});
}"""


def write_notebook(path: Path, sources: list[str]) -> str:
    cells = [
        {"id": f"c{i}", "cell_type": "code", "source": s, "metadata": {}, "outputs": [],
         "execution_count": None}
        for i, s in enumerate(sources)
    ]  # fmt: skip
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(nb))
    return str(path)


MARKS = """() => {
  const mark = (name) => performance.getEntriesByName(name)[0].startTime;
  const nav = performance.getEntriesByType('navigation')[0];
  return {html: nav.responseEnd, start: mark('runt:start'), synced: mark('runt:synced'),
          ready: mark('runt:ready')};
}"""


def open_big(web: WebDaemon, work: Path, cells: int, runs: int) -> list[dict[str, float]]:
    """ms from navigation start to the page's HTML, script start, first sync and ready,
    ``runs`` times (each a fresh load)."""
    sources = [f"x_{i} = {i}\nprint(x_{i} * 2)" for i in range(cells)]
    path = write_notebook(work / "big.ipynb", sources)
    page = web.open_notebook(path)  # the first open loads the file into a room
    times = []
    for _ in range(runs):
        page.reload()
        page.wait_for_selector(READY, state="attached")
        count = page.locator("#app .jp-Cell").count()
        assert count == cells, f"{count} cells rendered of {cells}"
        times.append({k: float(v) for k, v in page.evaluate(MARKS).items()})
    web.close_pages()
    return times


def keystrokes(web: WebDaemon, work: Path, count: int) -> list[float]:
    """ms from keydown in page A to the text's growth in page B's DOM."""
    path = write_notebook(work / "keys.ipynb", [""])
    one, two = web.open_notebook(path), web.open_notebook(path)
    one.evaluate(KEY_CLOCK)
    two.evaluate(TEXT_CLOCK)
    cell(one, 0).locator(".cm-content").click()
    for i in range(count):
        one.keyboard.type("abcdefghij"[i % 10])
        two.wait_for_function(
            "(n) => window.__seen.some(([length]) => length >= window.__base + n)", arg=i + 1
        )
    keys = one.evaluate("window.__keys")
    seen = two.evaluate("window.__seen")
    base = two.evaluate("window.__base")
    web.close_pages()
    lags = []
    for i, (_, sent) in enumerate(keys[:count]):
        arrived = next(t for length, t in seen if length >= base + i + 1)
        lags.append(arrived - sent)
    return lags


def print_code(megabytes: int) -> str:
    """1 KB lines, written a megabyte at a time (as a program printing in bulk does)."""
    return (
        "import sys\nblock = ('x' * 1023 + '\\n') * 1024\n"
        f"for _ in range({megabytes}): sys.stdout.write(block)"
    )


def shift_enter(page: Page, runs: int) -> tuple[float, list[float]]:
    """ms from Shift-Enter on ``1+1`` (cells 0..runs) to its Out: the first (its kernel
    comes from the pool), then ``runs`` on the running kernel."""
    page.evaluate(KEY_CLOCK)
    times = []
    for i in range(runs + 1):
        page.evaluate("(i) => window.runt.select(i)", i)
        page.evaluate(OUT_CLOCK, i)
        page.keyboard.press("Shift+Enter")
        ended = float(page.evaluate("window.__out"))
        sent = page.evaluate("window.__keys.filter(k => k[0] === 'Enter').pop()[1]")
        times.append(ended - float(sent))
    return times[0], times[1:]


def big_print(page: Page, index: int) -> tuple[float, float, int]:
    """Run the printing cell ``index`` (same kernel): (longest main-thread task ms,
    seconds to the end of its execution, how many long tasks)."""
    page.evaluate(LONG_TASKS)
    page.evaluate("(i) => window.runt.select(i)", index)
    started = time.perf_counter()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "(i) => /\\[\\d+\\]/.test(document.querySelectorAll('#app .jp-Cell')[i]"
        ".querySelector('.jp-InputPrompt').textContent)",
        arg=index,
        timeout=600_000,
    )
    elapsed = time.perf_counter() - started
    cell(page, index).locator(".jp-OutputArea-output").first.wait_for()
    page.wait_for_timeout(500)  # the last render's tasks
    long_tasks = [float(d) for d in page.evaluate("window.__long")]
    return max(long_tasks, default=0.0), elapsed, len(long_tasks)


def jupyterlab_open(web: WebDaemon, work: Path, cells: int, runs: int) -> list[float] | str:
    """The same notebook in JupyterLab (a uv venv of its own, offline first): ms from
    navigation start to the first cell's editor showing its source, after a first load
    (its bundle then cached, as the page's is). A str: why it could not run."""
    import os
    import socket
    import subprocess

    from runtimed.daemon.envs.uv_builder import uv_binary

    venv, uv = work / "jlab", uv_binary()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
    packages = ["jupyterlab", "ipykernel"]
    offline = subprocess.run([*install, "--offline", *packages], env=env)
    if offline.returncode and subprocess.run([*install, *packages], env=env).returncode:
        return "skipped: `uv pip install jupyterlab` failed here"
    sources = [f"x_{i} = {i}\nprint(x_{i} * 2)" for i in range(cells)]
    nb = work / "lab" / "big.ipynb"
    nb.parent.mkdir()
    write_notebook(nb, sources)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    homes = {k: str(work / "lab-home" / k) for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR")}
    server = subprocess.Popen(
        [str(venv / "bin" / "jupyter"), "lab", "--no-browser", f"--port={port}",
         "--ServerApp.token=bench", f"--ServerApp.root_dir={nb.parent}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env={**env, **homes}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        context = web.browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(120_000)
        url = f"http://127.0.0.1:{port}/lab/tree/big.ipynb?token=bench"
        first_editor = (
            "() => { const c = document.querySelector('.jp-NotebookPanel .jp-Cell .cm-content');"
            " return c && c.textContent.includes('x_0 = 0'); }"
        )
        for _ in range(50):  # until the server answers
            try:
                page.goto(url)
                break
            except Exception:
                time.sleep(0.2)
        page.wait_for_function(first_editor)
        times = []
        for _ in range(runs):
            page.reload()
            page.wait_for_function(first_editor)
            times.append(float(page.evaluate("performance.now()")))
        context.close()
        return times
    finally:
        server.terminate()
        server.wait(30)


def _since(started: float) -> str:
    return f"  [{time.perf_counter() - started:.1f} s]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a quick run (CI)")
    args = parser.parse_args()
    smoke = args.smoke
    cells, opens, keys, runs, megabytes = (100, 1, 10, 2, 2) if smoke else (1000, 5, 200, 20, 50)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = Path(tmp)
        pool = (
            ["--uv-pool-size", "1"] if smoke else ["--uv-pool-size", "2", "--kernel-pool-size", "1"]
        )
        with web_daemon(work / "cache", *pool) as web:
            marks = open_big(web, work, cells, opens)
            median = {k: percentile([m[k] for m in marks], 50) for k in marks[0]}
            print(
                f"open a {cells}-cell notebook to interactive: median {median['ready']:.0f} ms "
                f"over {len(marks)} (target < 500 ms: {verdict(median['ready'] < 500)}; "
                f"HTML {median['html']:.0f}, script runs {median['start']:.0f}, synced "
                f"{median['synced']:.0f} ms)" + _since(started)
            )
            lags = keystrokes(web, work, keys)
            p99 = percentile(lags, 99)
            print(
                f"keystroke page A -> page B ({len(lags)}): p50 {percentile(lags, 50):.1f} ms, "
                f"p99 {p99:.1f} ms (target p99 < 30 ms: {verdict(p99 < 30)})" + _since(started)
            )
            if not smoke:
                wait_settled(web.daemon, kernels=1, uv=1)
            sources = ["1+1"] * (runs + 1) + [print_code(megabytes)]
            page = web.open_notebook(write_notebook(work / "run.ipynb", sources))
            first, warm = shift_enter(page, runs)
            p50 = percentile(warm, 50)
            pooled = "a pooled kernel" if not smoke else "a kernel started from the uv pool"
            print(
                f"Shift-Enter 1+1 -> Out rendered: first (with {pooled}) {first:.0f} ms, "
                f"then p50 {p50:.1f} ms, p99 {percentile(warm, 99):.1f} ms over {len(warm)} "
                f"(target p50 < 40 ms: {verdict(p50 < 40)})" + _since(started)
            )
            longest, secs, count = big_print(page, runs + 1)
            web.close_pages()
            print(
                f"a cell printing {megabytes} MB ({secs:.1f} s): longest main-thread task "
                f"{longest:.0f} ms, {count} tasks over 50 ms (target < 200 ms: "
                f"{verdict(longest < 200)})" + _since(started)
            )
            if smoke:
                print("baseline: JupyterLab side by side only in the full run")
            else:
                lab = jupyterlab_open(web, work, cells, opens)
                if isinstance(lab, str):
                    print(f"baseline: JupyterLab {lab}")
                else:
                    print(
                        f"baseline: the same {cells}-cell notebook in JupyterLab to its first "
                        f"cell's editor: median {percentile(lab, 50):.0f} ms over {len(lab)} "
                        f"(this page: {median['ready']:.0f} ms)" + _since(started)
                    )
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
