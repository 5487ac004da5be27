"""OutputCapture: the daemon does what a frontend's ipywidgets ``OutputModel`` does.

ipywidgets' ``Output`` (``with out: print(...)``, ``@out.capture()``, ``interact``) only
sets its ``msg_id`` trait to the request it runs under; the *frontend* then takes every
IOPub output of that request (stream, display_data, execute_result, error,
clear_output) into the widget's ``outputs`` instead of the cell's. The daemon is the
one frontend of the kernel, so it does that here: a captured output goes to the model's
``outputs`` in the runtime document (every page and Session sees it) and not to a cell.
Outputs of a button's ``on_click`` run under the daemon's own ``comm_msg`` (no cell):
they are captured the same way, else dropped as before.
"""

from __future__ import annotations

from typing import Any

from runtimed.daemon.widgets.comm_relay import CommRelay

#: IOPub messages that are outputs (what an OutputModel takes).
OUTPUT_MESSAGES = frozenset({"stream", "display_data", "execute_result", "error", "clear_output"})


class OutputCapture:
    """Routes a message to the Output widget capturing its request (see module doc)."""

    def __init__(self, relay: CommRelay) -> None:
        self.relay = relay
        #: Output widgets told ``clear_output(wait=True)``: cleared by their next output.
        self._clear_pending: set[str] = set()

    def capture(self, msg: dict[str, Any]) -> bool:
        """True if an Output widget took ``msg`` (then it is no cell's output)."""
        kind = msg.get("msg_type")
        if kind not in OUTPUT_MESSAGES or not len(self.relay):
            return False
        parent = (msg.get("parent_header") or {}).get("msg_id")
        if not isinstance(parent, str) or not parent:
            return False
        model_id = self.relay.capturing(parent)
        if model_id is None:
            return False
        content = dict(msg.get("content") or {})
        if kind == "stream" and not isinstance(content.get("text"), str):
            return False  # a huge print, stored as blobs: it stays the cell's
        outputs = self._outputs(model_id)
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_pending.add(model_id)
            else:
                self._clear_pending.discard(model_id)
                self.relay.set_from_frontend(model_id, {"outputs": []})
            return True
        if model_id in self._clear_pending:
            self._clear_pending.discard(model_id)
            outputs = []
        self.relay.set_from_frontend(model_id, {"outputs": _added(outputs, str(kind), content)})
        return True

    def _outputs(self, model_id: str) -> list[Any]:
        outputs = self.relay.state(model_id).get("outputs")
        return list(outputs) if isinstance(outputs, list) else []


def _added(outputs: list[Any], kind: str, content: dict[str, Any]) -> list[Any]:
    """``outputs`` with one more nbformat output; a stream continues the last one of its
    name, as JupyterLab's output area does."""
    if kind == "stream":
        text = content.get("text", "")
        name = content.get("name", "stdout")
        last = outputs[-1] if outputs else None
        if (
            isinstance(last, dict)
            and last.get("output_type") == "stream"
            and last.get("name") == name
        ):
            return [*outputs[:-1], {**last, "text": str(last.get("text", "")) + str(text)}]
        return [*outputs, {"output_type": "stream", "name": name, "text": str(text)}]
    output: dict[str, Any] = {"output_type": kind}
    if kind == "error":
        output.update(
            ename=content.get("ename", ""),
            evalue=content.get("evalue", ""),
            traceback=list(content.get("traceback") or []),
        )
    else:
        output.update(data=content.get("data") or {}, metadata=content.get("metadata") or {})
        if kind == "execute_result":
            output["execution_count"] = content.get("execution_count")
    return [*outputs, output]
