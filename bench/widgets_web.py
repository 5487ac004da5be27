"""Issue 26's slider figure, in headless Chromium (tests/browser.py): a slider moved in
page A to the kernel's observer and to page B's slider.

    python bench/widgets_web.py            # full run (200 steps)
    python bench/widgets_web.py --smoke    # quick run for CI (< 20 s)

Page A's slider takes one ArrowRight at a time (a drag is a run of such steps; each
waits for page B to show it, so no step queues behind another). Clocks: page A's
keydown and page B's readout change are the browser's epoch clock
(performance.timeOrigin + now), the kernel's observer stamps time.time() on the same
machine. Baseline: the same step made by a Session (set_widget_state over the socket),
to page B.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from harness import percentile

# isort: split
import runtimed
from browser import WebDaemon, web_daemon  # tests/, put on sys.path by harness

VIEW = "application/vnd.jupyter.widget-view+json"
READOUT = f'.jp-OutputArea-output[data-mime="{VIEW}"] .widget-slider .widget-readout'
HANDLE = f'.jp-OutputArea-output[data-mime="{VIEW}"] .widget-slider .noUi-handle'

SLIDER = (
    "import ipywidgets as w, time, json\n"
    "s = w.IntSlider(value=0, max=1_000_000)\n"
    "stamps = {}\n"
    "s.observe(lambda c: stamps.setdefault(c['new'], time.time() * 1000), 'value')\n"
    "s"
)
#: keydown times in page A, capture phase (before the slider sees the key).
KEY_CLOCK = """() => {
  window.__keys = [];
  document.addEventListener('keydown', () => {
    window.__keys.push(performance.timeOrigin + performance.now());
  }, true);
}"""
#: Each new value of page B's readout, with when it appeared.
READOUT_CLOCK = """(selector) => {
  window.__values = {};
  const node = document.querySelector(selector);
  new MutationObserver(() => {
    const value = node.textContent.trim();
    if (!(value in window.__values)) {
      window.__values[value] = performance.timeOrigin + performance.now();
    }
  }).observe(node, {characterData: true, childList: true, subtree: true});
}"""


def wait_value(page: Page, value: int) -> None:
    page.wait_for_function("(v) => String(v) in window.__values", arg=value, timeout=15_000)


def page_steps(page_a: Page, page_b: Page, start: int, steps: int) -> list[tuple[int, float]]:
    """(value, keydown epoch ms) for each ArrowRight on page A's slider."""
    page_a.locator(HANDLE).first.focus()
    for i in range(1, steps + 1):
        page_a.keyboard.press("ArrowRight")
        wait_value(page_b, start + i)
    keys: list[float] = page_a.evaluate("window.__keys")
    return [(start + i + 1, sent) for i, sent in enumerate(keys[-steps:])]


def session_steps(
    session: runtimed.Session, model: str, page_b: Page, start: int, steps: int
) -> list[tuple[int, float]]:
    sent = []
    for i in range(1, steps + 1):
        sent.append((start + i, time.time() * 1000))
        session.set_widget_state(model, {"value": start + i})
        wait_value(page_b, start + i)
    return sent


def lags(sent: list[tuple[int, float]], seen: dict[str, float]) -> list[float]:
    return [seen[str(value)] - at for value, at in sent if str(value) in seen]


def report(what: str, values: list[float]) -> str:
    return (
        f"{what} ({len(values)}): p50 {percentile(values, 50):.1f} ms, "
        f"p99 {percentile(values, 99):.1f} ms"
    )


def measure(web: WebDaemon, steps: int) -> list[str]:
    with runtimed.Session("bench-widgets-web", socket_path=web.daemon.socket).connect() as s:
        result = s.run(SLIDER)
        assert result.success, result.message
        model = next(o.data[VIEW]["model_id"] for o in result.outputs if o.data and VIEW in o.data)
        page_a = web.open_notebook(s.notebook_id)
        page_b = web.open_notebook(s.notebook_id)
        for page in (page_a, page_b):
            page.wait_for_selector(READOUT, timeout=30_000)
        page_a.evaluate(KEY_CLOCK)
        page_b.evaluate(READOUT_CLOCK, READOUT)
        warm = 3
        page_steps(page_a, page_b, 0, warm)
        sent = page_steps(page_a, page_b, warm, steps)
        seen_b: dict[str, float] = page_b.evaluate("window.__values")
        out = s.run("print(json.dumps(stamps))")
        kernel = {str(k): v for k, v in json.loads(out.stdout).items()}
        base = session_steps(s, model, page_b, warm + steps, steps)
        seen_b = page_b.evaluate("window.__values")
        web.close_pages()
    return [
        report("slider step page A -> kernel observer", lags(sent, kernel)),
        report("slider step page A -> page B", lags(sent, seen_b)),
        report("baseline: Session.set_widget_state -> page B", lags(base, seen_b)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a quick run (CI)")
    args = parser.parse_args()
    steps = 10 if args.smoke else 200
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-widgets-web-") as tmp,
        web_daemon(Path(tmp) / "cache", "--uv-pool-size", "1") as web,
    ):
        web.daemon.wait_pool("uv", 1)
        lines: list[Any] = measure(web, steps)
    for line in lines:
        print(line)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
