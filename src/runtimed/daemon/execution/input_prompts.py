"""InputPrompts: a running cell's ``input()`` / ``getpass()``, answered by the client
that started the execution, and by no one else.

A client that can answer asks for it when it queues the cell (``execute_cell`` with
``stdin: true``); the kernel then runs the cell with ``allow_stdin``, and each of its
``input_request`` messages becomes the event ``input_request`` sent to that client only.
Its ``input_reply`` request answers. An interrupt cancels the prompt (the kernel raises
KeyboardInterrupt in ``input()``; the client gets ``input_cancelled``); a client that
leaves while asked is answered EOF for (``input()`` raises EOFError), so the cell never
waits for someone who is gone. A cell run for a client that cannot answer gets
``StdinNotAvailable`` instead of ipykernel's StdinNotImplementedError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from runtimed.daemon.kernels.execution import Message, MessageCallback
from runtimed.errors import RuntimedError

#: What ipykernel reads as end of input: ``input()`` raises EOFError.
EOF = "\x04"
KERNEL_STDIN_ERROR = "StdinNotImplementedError"
STDIN_NOT_AVAILABLE = "StdinNotAvailable"
NOT_AVAILABLE_MESSAGE = (
    "the cell asked for input, but the client that ran it cannot answer: run it from "
    "`runt run`, the notebook page (`runt open`), with Session.run(code, stdin=...) or "
    "from an MCP client (send_input)"
)
#: A password's answer as the outputs show it (JupyterLab's mask: not even its length).
PASSWORD_MASK = "········"


class InputClient(Protocol):
    """The client that started an execution (a room's ``Peer``)."""

    @property
    def closed(self) -> bool: ...

    def send_event(self, event: dict[str, Any]) -> None: ...


class InputKernel(Protocol):
    """What answering needs of a kernel (``KernelSession``)."""

    def reply_input(self, request: Message, value: str) -> None: ...


@dataclass(frozen=True)
class PendingInput:
    execution_id: str
    cell_id: str
    request: Message
    client: InputClient
    kernel: InputKernel


class InputPrompts:
    """The prompt a room's running cell waits on (one at most: one cell runs at a time)."""

    def __init__(self) -> None:
        self._pending: PendingInput | None = None

    def asker(
        self, kernel: InputKernel, execution_id: str, cell_id: str, client: InputClient
    ) -> MessageCallback:
        """The ``on_input`` callback of one execution: prompts go to ``client``."""

        def on_input(msg: Message) -> None:
            if client.closed:
                kernel.reply_input(msg, EOF)
                return
            content = msg.get("content") or {}
            self._pending = PendingInput(execution_id, cell_id, msg, client, kernel)
            client.send_event(
                {
                    "event": "input_request",
                    "execution_id": execution_id,
                    "cell_id": cell_id,
                    "prompt": str(content.get("prompt") or ""),
                    "password": bool(content.get("password")),
                }
            )

        return on_input

    def waiting(self, execution_id: str) -> bool:
        """True while ``execution_id`` waits for an answer."""
        return self._pending is not None and self._pending.execution_id == execution_id

    def answer(self, execution_id: str, value: str, client: InputClient) -> PendingInput:
        """``client`` answers the prompt of ``execution_id`` (the prompt answered is
        returned); RuntimedError when that execution waits for nothing or another client
        started it."""
        pending = self._pending
        if pending is None or pending.execution_id != execution_id:
            raise RuntimedError(
                f"execution {execution_id} is not waiting for input", "not_waiting_for_input"
            )
        if pending.client is not client:
            raise RuntimedError(
                "only the client that started this execution may answer its input prompt",
                "not_your_execution",
            )
        self._pending = None
        pending.kernel.reply_input(pending.request, value)
        return pending

    def cancel(self, reason: str) -> bool:
        """An interrupt: the prompt is void (the kernel raises KeyboardInterrupt in it).
        True if one was: a kernel waiting in ``input()`` never misses the interrupt, so
        it needs no second one (which would cut its traceback short)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        event = {"event": "input_cancelled", "execution_id": pending.execution_id}
        pending.client.send_event({**event, "reason": reason})
        return True

    def ended(self, execution_id: str) -> None:
        """The execution ended: a prompt it left is void."""
        if self.waiting(execution_id):
            self._pending = None

    def client_left(self, client: InputClient) -> None:
        """The asked client is gone: EOF, so the cell goes on without it."""
        pending = self._pending
        if pending is not None and pending.client is client:
            self._pending = None
            pending.kernel.reply_input(pending.request, EOF)


def echo_message(pending: PendingInput, value: str) -> Message:
    """The answered prompt as a stdout ``stream`` message of the cell (a page shows the
    prompt and the answer in the outputs, as JupyterLab does; a password masked)."""
    content = pending.request.get("content") or {}
    shown = PASSWORD_MASK if content.get("password") else value
    text = f"{content.get('prompt') or ''}{shown}\n"
    return {"msg_type": "stream", "content": {"name": "stdout", "text": text}}


def not_available(msg: Message) -> Message:
    """An ``error`` output of a cell run without stdin: ipykernel's
    StdinNotImplementedError becomes ``StdinNotAvailable``, saying what to do."""
    content = msg.get("content") or {}
    if msg.get("msg_type") != "error" or content.get("ename") != KERNEL_STDIN_ERROR:
        return msg
    traceback = list(content.get("traceback") or [])[:-1]
    line = f"{STDIN_NOT_AVAILABLE}: {NOT_AVAILABLE_MESSAGE}"
    new = {**content, "ename": STDIN_NOT_AVAILABLE, "evalue": NOT_AVAILABLE_MESSAGE}
    return {**msg, "content": {**new, "traceback": [*traceback, line]}}


def error_text(ename: str | None, evalue: str | None) -> str:
    """The record's error line of a failed execution."""
    if ename == KERNEL_STDIN_ERROR:
        return f"{STDIN_NOT_AVAILABLE}: {NOT_AVAILABLE_MESSAGE}"
    return f"{ename}: {evalue}"
