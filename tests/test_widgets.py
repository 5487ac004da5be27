"""Widgets through a real daemon, a real ipykernel and real ipywidgets: a late joiner sees
every live widget at its current state, a Session's change reaches the kernel's observer
once (no echo written back) and every other Session, a Button's on_click fires on a
client's click, binary values come back as bytes, a restart clears them, and a kernel
flooding 100,000 updates neither grows the runtime document nor stalls another room."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runtimed
from helpers import DaemonProcess
from mcp_host import start_agent
from runtimed.errors import RuntimedError

pytestmark = pytest.mark.daemon

VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def widgets_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("widgets") / "cache", ["--uv-pool-size", "2"])
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def session(d: DaemonProcess, notebook_id: str) -> runtimed.Session:
    return runtimed.Session(notebook_id, socket_path=d.socket_path).connect()


def shown_model(result: Any) -> str:
    """The model id of the widget a cell displayed."""
    assert result.success, result.message
    views = [o.data[VIEW] for o in result.outputs if o.data and VIEW in o.data]
    assert views, result.outputs
    return str(views[-1]["model_id"])


SLIDER = (
    "import ipywidgets as w\n"
    "s = w.IntSlider(value=5, max=100_000, description='n')\n"
    "seen = []\n"
    "s.observe(lambda change: seen.append(change['new']), 'value')\n"
    "s"
)


def test_late_joiner_sees_the_slider_and_a_change_reaches_the_kernel_once(
    widgets_daemon: DaemonProcess,
) -> None:
    first = session(widgets_daemon, "sliders")
    model = shown_model(first.run(SLIDER))
    state = first.widgets()[model]
    assert state["value"] == 5 and state["_model_name"] == "IntSliderModel"
    layout = state["layout"].removeprefix("IPY_MODEL_")
    assert first.widgets()[layout]["_model_name"] == "LayoutModel"  # child models too
    first.run("s.value = 7")

    late = session(widgets_daemon, "sliders")
    assert late.widgets()[model]["value"] == 7
    # Count the writes of the slider's entry every replica receives from now on.
    writes: list[Any] = []
    widgets_map = first.runtime_doc.get("widgets", type=runtimed_map())
    widgets_map.observe(lambda event: writes.append(event.keys))
    late.set_widget_state(model, {"value": 42})
    assert first.widgets()[model]["value"] == 42  # the other Session sees it at once
    r = first.run("print(s.value, seen)")
    assert r.stdout == "42 [7, 42]\n"  # the kernel's observer saw it, once
    # The kernel's echo_update was not written back: one write, the client's own.
    assert len(writes) == 1, writes
    # A value the kernel changes in return comes back as an ordinary update.
    late.set_widget_state(model, {"value": 200_000})  # over max: the kernel clamps it
    first.run("pass")
    assert late.widgets()[model]["value"] == 100_000
    with pytest.raises(RuntimedError) as excinfo:
        late.set_widget_state("no-such-model", {"value": 1})
    assert excinfo.value.code == "not_found" and "widgets()" in excinfo.value.message
    with pytest.raises(RuntimedError) as excinfo:
        late.set_widget_state(model, {})
    assert excinfo.value.code == "invalid_request"
    first.close()
    late.close()


def runtimed_map() -> Any:
    from pycrdt import Map

    return Map


def test_button_click_fires_on_click(widgets_daemon: DaemonProcess) -> None:
    s = session(widgets_daemon, "buttons")
    code = (
        "import ipywidgets as w\nb = w.Button(description='go')\nclicks = []\n"
        "b.on_click(lambda button: clicks.append(button.description))\nb"
    )
    model = shown_model(s.run(code))
    assert s.widgets()[model]["description"] == "go"
    s.send_widget_message(model, {"event": "click"})
    s.send_widget_message(model, {"event": "click"})
    assert s.run("print(clicks)").stdout == "['go', 'go']\n"
    s.close()


def test_binary_values_and_kernel_messages(widgets_daemon: DaemonProcess) -> None:
    s = session(widgets_daemon, "binary")
    events: list[dict[str, Any]] = []
    s.add_listener(events.append)
    code = (
        "import ipywidgets as w\nimg = w.Image(value=b'\\x89PNG' + bytes(range(256)) * 40, "
        "format='png')\nimg"
    )
    model = shown_model(s.run(code))
    assert s.widgets()[model]["value"] == b"\x89PNG" + bytes(range(256)) * 40
    s.run("img.value = b'new'")
    assert s.widgets()[model]["value"] == b"new"
    # A custom message from the kernel reaches the peers as an event.
    s.run("img.send({'hello': 1}, buffers=[b'raw'])")
    sent = [e for e in events if e.get("event") == "widget_message"]
    assert sent and sent[-1]["model_id"] == model and sent[-1]["content"] == {"hello": 1}
    assert s.get_blob(sent[-1]["buffers"][0]["blob"]) == b"raw"
    s.close()


def test_restart_and_close_clear_widgets(widgets_daemon: DaemonProcess) -> None:
    s = session(widgets_daemon, "restarts")
    model = shown_model(s.run("import ipywidgets as w\nt = w.Text('hi')\nt"))
    assert s.widgets()[model]["value"] == "hi"
    s.run("t.close()")
    assert model not in s.widgets()
    s.run("t2 = w.Text('again')\nt2")
    assert len(s.widgets()) > 0
    s.restart_kernel()
    assert s.widgets() == {}
    s.close()


def test_a_flood_of_updates_is_coalesced_and_other_rooms_keep_running(
    widgets_daemon: DaemonProcess,
) -> None:
    flooding = session(widgets_daemon, "flood")
    model = shown_model(flooding.run(SLIDER))
    other = session(widgets_daemon, "bystander")
    other.run("1")  # its kernel is up
    before = len(flooding.runtime_doc.get_update())
    latencies: list[float] = []
    done = threading.Event()

    def measure() -> None:
        while not done.is_set():
            started = time.perf_counter()
            assert other.run("1").success
            latencies.append(time.perf_counter() - started)

    thread = threading.Thread(target=measure)
    thread.start()
    try:
        # 20,000 updates: uncoalesced, each would add tens of bytes to the document.
        r = flooding.run("for i in range(20_000):\n    s.value = i\nlen(seen)", timeout=300)
    finally:
        done.set()
        thread.join()
    assert r.success, r.message
    assert flooding.widgets()[model]["value"] == 19_999
    growth = len(flooding.runtime_doc.get_update()) - before
    p50, p99 = statistics.median(latencies), sorted(latencies)[int(len(latencies) * 0.99)]
    worst = max(latencies)
    print(f"flood: document +{growth} B; another room's run('1') over {len(latencies)} runs: "
          f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {worst * 1e3:.1f} ms")  # fmt: skip
    assert growth < 64 * 1024, growth  # 20,000 updates, a few KB of document
    assert len(latencies) >= 5 and worst < 2.0
    flooding.close()
    other.close()


def test_mcp_tools_read_set_and_click(widgets_daemon: DaemonProcess, tmp_path: Path) -> None:
    async def main() -> None:
        agent = await start_agent(widgets_daemon, tmp_path)
        try:
            await agent.ok("create_notebook", path=str(tmp_path / "w.ipynb"))
            code = SLIDER + "\nb = w.Button(description='go')\nclicks = []\n"
            code += "b.on_click(lambda button: clicks.append(1))\nw.VBox([s, b])"
            await agent.ok("create_cell", source=code, run=True, timeout=120)
            text, info, _ = await agent.ok("get_widgets")
            by_name = {v["_model_name"]: m for m, v in info["widgets"].items()}
            slider, button = by_name["IntSliderModel"], by_name["ButtonModel"]
            assert info["widgets"][slider]["value"] == 5 and "Layout" not in text
            assert f'{slider}: IntSlider description="n" value=5' in text
            _, info, _ = await agent.ok("get_widgets", model_id=slider)
            assert info["state"]["max"] == 100_000
            _, info, _ = await agent.ok("set_widget_state", model_id=slider, state={"value": 9})
            assert info["state"]["value"] == 9
            await agent.ok("send_widget_message", model_id=button, content={"event": "click"})
            text, _, _ = await agent.ok(
                "create_cell", source="print(s.value, seen, len(clicks))", run=True
            )
            assert "9 [9] 1" in text
            error = await agent.error("set_widget_state", model_id="nope", state={"value": 1})
            assert "no widget 'nope'" in error
            error = await agent.error("set_widget_state", model_id=slider, state={})
            assert "at least one trait" in error
        finally:
            await agent.close()

    asyncio.run(main())
