"""CommRelay in process (no kernel): comm messages into the runtime document, coalesced
into RuntimeState's batches, echoes dropped, buffers as blobs, clear on restart."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from runtimed.daemon.kernels.router import MessageRouter
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.daemon.widgets.comm_relay import CommRelay
from runtimed.documents.runtime import RuntimeDoc
from runtimed.documents.widgets import resolve_state
from runtimed.errors import RuntimedError


class Kernel:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.buffers: list[list[bytes]] = []

    def send_shell(
        self, msg_type: str, content: dict[str, Any], buffers: Sequence[bytes] = ()
    ) -> str:
        self.sent.append((msg_type, content))
        self.buffers.append(list(buffers))
        return f"msg-{len(self.sent)}"


class Blobs:
    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}

    def put(self, data: bytes, media_type: str) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.stored[digest] = data
        return digest


def comm(kind: str, comm_id: str, buffers: list[bytes] | None = None, **content: Any) -> Any:
    return {
        "msg_type": kind,
        "content": {"comm_id": comm_id, **content},
        "buffers": [memoryview(b) for b in buffers or []],
        "parent_header": {"msg_id": "exec-1"},
    }


def update(comm_id: str, method: str = "update", **state: Any) -> Any:
    return comm("comm_msg", comm_id, data={"method": method, "state": state, "buffer_paths": []})


def opened(comm_id: str, **state: Any) -> Any:
    return comm("comm_open", comm_id, target_name="jupyter.widget", data={"state": state})


def relay_and_doc() -> tuple[CommRelay, RuntimeState, Kernel, Blobs, list[int]]:
    state = RuntimeState(RuntimeDoc())
    writes: list[int] = []
    state.doc.doc.observe(lambda event: writes.append(1))
    kernel, blobs = Kernel(), Blobs()
    return CommRelay(state, lambda: kernel, blobs), state, kernel, blobs, writes


async def test_a_flood_of_updates_is_one_write_per_batch_and_comms_bypass_executions() -> None:
    relay, state, _, _, writes = relay_and_doc()
    router = MessageRouter(relay.on_kernel_message)
    execution = router.track("exec-1")  # comm messages of a running cell still reach the relay
    router.route_iopub(opened("m1", value=0, _model_name="IntSliderModel"))
    for i in range(10_000):
        router.route_iopub(update("m1", value=i))
    state.flush()
    assert len(writes) == 1
    assert state.doc.widgets.entries()["m1"]["state"] == {
        "value": 9999,
        "_model_name": "IntSliderModel",
    }
    assert execution.msg_id == "exec-1" and router.pending == 1


async def test_client_change_goes_to_the_kernel_once_and_the_echo_is_dropped() -> None:
    relay, state, kernel, _, writes = relay_and_doc()
    relay.on_kernel_message(opened("m1", value=1))
    state.flush()
    relay.set_state("m1", {"value": 5})
    state.flush()
    sent = {"method": "update", "state": {"value": 5}, "buffer_paths": []}
    assert kernel.sent == [("comm_msg", {"comm_id": "m1", "data": sent})]
    before = len(writes)
    relay.on_kernel_message(update("m1", method="echo_update", value=5))
    state.flush()
    assert len(writes) == before and relay.kernel_updates == 0
    relay.send_custom("m1", {"event": "click"})
    assert kernel.sent[-1][1]["data"] == {"method": "custom", "content": {"event": "click"}}
    with pytest.raises(RuntimedError) as excinfo:
        relay.set_state("other", {"value": 1})
    assert excinfo.value.code == "not_found"
    relay_without_kernel = CommRelay(state, lambda: None)
    relay_without_kernel.on_kernel_message(opened("m2", value=1))
    with pytest.raises(RuntimedError) as excinfo:
        relay_without_kernel.set_state("m2", {"value": 2})
    assert excinfo.value.code == "no_kernel"


async def test_buffers_are_blobs_and_close_and_clear_remove_models() -> None:
    relay, state, _, blobs, _ = relay_and_doc()
    msg = comm(
        "comm_open",
        "img",
        [b"\x89PNG"],
        target_name="jupyter.widget",
        data={"state": {"format": "png"}, "buffer_paths": [["value"]]},
    )
    relay.on_kernel_message(msg)
    relay.on_kernel_message(comm("comm_open", "other", target_name="not.a.widget", data={}))
    state.flush()
    entry = state.doc.widgets.entries()["img"]
    assert entry["buffers"][0]["path"] == ["value"] and "other" not in relay
    assert resolve_state(entry, blobs.stored.__getitem__) == {"format": "png", "value": b"\x89PNG"}
    relay.on_kernel_message(update("img", value="text now"))  # a plain value replaces the buffer
    state.flush()
    assert state.doc.widgets.entries()["img"]["buffers"] == []
    relay.on_kernel_message(opened("m1", value=1))
    relay.on_kernel_message(comm("comm_close", "img"))
    state.flush()
    assert set(state.doc.widgets.entries()) == {"m1"}
    relay.clear()
    state.flush()
    assert state.doc.widgets.entries() == {} and len(relay) == 0
    # A rebuilt runtime document (runtime_reset) keeps the live widgets.
    relay.on_kernel_message(opened("m3", value=3))
    assert state.rebuild().widgets.entries()["m3"]["state"] == {"value": 3}


async def test_a_clients_binary_values_and_messages_reach_the_kernel_with_their_buffers() -> None:
    relay, state, kernel, blobs, _ = relay_and_doc()
    relay.on_kernel_message(opened("img", format="png"))
    relay.set_state("img", {}, [(["value"], b"\x00\x01\x02")])
    sent = {"method": "update", "state": {}, "buffer_paths": [["value"]]}
    assert kernel.sent[-1] == ("comm_msg", {"comm_id": "img", "data": sent})
    assert kernel.buffers[-1] == [b"\x00\x01\x02"]
    state.flush()
    entry = state.doc.widgets.entries()["img"]  # every peer sees the new bytes
    assert resolve_state(entry, blobs.stored.__getitem__)["value"] == b"\x00\x01\x02"
    relay.send_custom("img", {"chunk": 1}, [b"raw"])
    assert kernel.sent[-1][1]["data"] == {"method": "custom", "content": {"chunk": 1}}
    assert kernel.buffers[-1] == [b"raw"]
    for bad in ([], [{"a": 1}], [None]):
        with pytest.raises(RuntimedError, match="buffer path"):
            relay.set_state("img", {}, [(bad, b"x")])  # type: ignore[list-item]
    with pytest.raises(RuntimedError, match="non-empty"):
        relay.set_state("img", {})


async def test_an_anywidgets_code_is_a_blob_read_back_as_text() -> None:
    relay, state, _, blobs, _ = relay_and_doc()
    esm = "export default { render({ model, el }) { el.textContent = 'é'; } }"
    relay.on_kernel_message(
        opened("any", _model_module="anywidget", _esm=esm, _css=".a{}", count=1)
    )
    relay.on_kernel_message(opened("plain", _model_module="@jupyter-widgets/controls", _esm="x"))
    state.flush()
    entry = state.doc.widgets.entries()["any"]
    assert "_esm" not in entry["state"] and "_css" not in entry["state"]
    types = {b["path"][0]: b["media_type"] for b in entry["buffers"]}
    assert types == {"_esm": "text/javascript", "_css": "text/css"}
    resolved = resolve_state(entry, blobs.stored.__getitem__)
    assert resolved["_esm"] == esm and resolved["_css"] == ".a{}" and resolved["count"] == 1
    assert state.doc.widgets.entries()["plain"]["state"]["_esm"] == "x"  # not an anywidget
    # A new module (anywidget's hot reload) replaces the old; a URL stays in the state.
    relay.on_kernel_message(update("any", _esm="export default {}"))
    state.flush()
    entry = state.doc.widgets.entries()["any"]
    assert resolve_state(entry, blobs.stored.__getitem__)["_esm"] == "export default {}"
    relay.on_kernel_message(update("any", _esm="https://example.org/widget.js"))
    state.flush()
    entry = state.doc.widgets.entries()["any"]
    assert entry["state"]["_esm"] == "https://example.org/widget.js"
    assert [b["path"] for b in entry["buffers"]] == [["_css"]]
    # Without a blob store the code stays in the entry, inline.
    inline = CommRelay(RuntimeState(RuntimeDoc()), lambda: None)
    inline.on_kernel_message(opened("any", _model_module="anywidget", _esm=esm))
    inline.sink.flush()  # type: ignore[attr-defined]
    entry = inline.sink.doc.widgets.entries()["any"]  # type: ignore[attr-defined]
    assert resolve_state(entry, lambda digest: b"")["_esm"] == esm
