"""OutputCapture in process (no kernel): the outputs of the request an Output widget
listens to go to its ``outputs`` (streams merged, clear_output with and without wait),
the others stay the cells'."""

from __future__ import annotations

from typing import Any

from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.daemon.widgets.comm_relay import CommRelay
from runtimed.daemon.widgets.output_capture import OutputCapture
from runtimed.documents.runtime import RuntimeDoc


class Kernel:
    def send_shell(self, msg_type: str, content: dict[str, Any]) -> str:
        return "msg"


def iopub(kind: str, parent: str, **content: Any) -> dict[str, Any]:
    return {"msg_type": kind, "content": content, "parent_header": {"msg_id": parent}}


def comm_msg(comm_id: str, kind: str, **data: Any) -> dict[str, Any]:
    return {"msg_type": kind, "content": {"comm_id": comm_id, "data": data}, "buffers": []}


def test_an_output_widget_takes_the_outputs_of_its_request() -> None:
    relay = CommRelay(RuntimeState(RuntimeDoc()), lambda: Kernel())
    capture = OutputCapture(relay)
    assert not capture.capture(iopub("stream", "exec-1", name="stdout", text="no widget\n"))
    state = {"_model_name": "OutputModel", "msg_id": "", "outputs": []}
    opened = {"comm_id": "out", "target_name": "jupyter.widget", "data": {"state": state}}
    relay.on_kernel_message({"msg_type": "comm_open", "content": opened, "buffers": []})
    assert not capture.capture(iopub("stream", "exec-1", name="stdout", text="not yet\n"))
    relay.on_kernel_message(
        comm_msg("out", "comm_msg", method="update", state={"msg_id": "exec-1"})
    )
    assert capture.capture(iopub("stream", "exec-1", name="stdout", text="a\n"))
    assert capture.capture(iopub("stream", "exec-1", name="stdout", text="b\n"))
    png = {"image/png": "iVBOR", "text/plain": "<Image>"}
    assert capture.capture(iopub("display_data", "exec-1", data=png, metadata={}))
    assert not capture.capture(iopub("stream", "exec-2", name="stdout", text="another cell\n"))
    assert not capture.capture(iopub("status", "exec-1", execution_state="idle"))
    outputs = relay.state("out")["outputs"]
    assert outputs == [
        {"output_type": "stream", "name": "stdout", "text": "a\nb\n"},
        {"output_type": "display_data", "data": png, "metadata": {}},
    ]
    # clear_output(wait=True): cleared by the next output, not before.
    assert capture.capture(iopub("clear_output", "exec-1", wait=True))
    assert len(relay.state("out")["outputs"]) == 2
    assert capture.capture(iopub("error", "exec-1", ename="E", evalue="v", traceback=["tb"]))
    assert relay.state("out")["outputs"] == [
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["tb"]}
    ]
    assert capture.capture(iopub("clear_output", "exec-1", wait=False))
    assert relay.state("out")["outputs"] == []
    # The context manager exits: msg_id "" and nothing more is captured.
    relay.on_kernel_message(comm_msg("out", "comm_msg", method="update", state={"msg_id": ""}))
    assert not capture.capture(iopub("stream", "exec-1", name="stdout", text="after\n"))
