"""Test doubles at KernelSession's two seams: a backend (lifecycle) and a wire (messages).

``FakeBackend`` plays the kernel process: launch, exit code, interrupt (SIGINT),
restart, shutdown, with no process. ``FakeWire`` plays the sockets and the ipykernel
behind them: it answers each request as ipykernel does, a message per event-loop turn,
through the real message format (signed with the connection's key, decoded by
``channels.decode_parts`` or the session's large-message decoder). What a cell does is
scripted by its code:

- anything else: busy, execute_input, stream ``ran <code>``, execute_result
  ``'<code>'``, execute_reply ok, idle
- ``raise <ename>: <evalue>``: an error output and an error reply
- ``die`` / ``die <code>``: the process exits mid-cell (exit code -9 unless given)
- ``block``: runs until an interrupt (KeyboardInterrupt), a restart or death; the
  shell requests sent meanwhile wait for it, as in ipykernel
- ``block quietly``: as ``block``, but an interrupt makes it go idle with no reply (what
  ipykernel does when the interrupt lands while it announces the cell)
- ``idle without reply``: goes idle with no execute_reply
- ``late``: as anything else, then one more stream after its idle
- ``big <n>``: a stream of ``n`` bytes (over a megabyte: the large-message decoder)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jupyter_client.session import Session

from runtimed.daemon.kernels import KernelConfig, KernelConnection, KernelSession, Message
from runtimed.daemon.kernels.backend import InterruptMode
from runtimed.daemon.kernels.channels import (
    LARGE_MESSAGE_BYTES,
    MessageHandler,
    decode_parts,
    verified_parts,
)
from runtimed.daemon.kernels.workspace import KernelWorkspace, create_workspace


class FakeBackend:
    """A kernel 'process' in this one (satisfies ``KernelBackend``).

    ``exit_at_launch``: the process exits as soon as it starts, writing ``log``.
    ``language``: what its kernel_info says it speaks. ``responsive=False``: it never
    answers (nor does any wire to it). ``answers_interrupt_requests``: in ``message``
    mode, whether it answers interrupt_request on control.
    """

    def __init__(
        self,
        *,
        interrupt_mode: InterruptMode = "signal",
        answers_interrupt_requests: bool = True,
        exit_at_launch: int | None = None,
        log: str = "",
        language: str = "python",
        responsive: bool = True,
    ) -> None:
        self._interrupt_mode: InterruptMode = interrupt_mode
        self.answers_interrupt_requests = answers_interrupt_requests
        self.exit_at_launch = exit_at_launch
        self.log = log
        self.language = language
        self.responsive = responsive
        self.session = Session(key=b"fake-kernel-key")
        self.wires: list[FakeWire] = []
        self.execution_count = 0
        self.launches = 0
        self.restarts = 0
        self.interrupts = 0
        self.shutdowns: list[bool] = []
        self.cwd: Path | None = None
        #: A real private dir, as a local kernel has (a pooled kernel's adoption file).
        self._workspace: KernelWorkspace | None = None
        self._launched = False
        self._exit_code: int | None = None

    # -- KernelBackend -----------------------------------------------------------------

    async def launch(self, config: KernelConfig) -> KernelConnection:
        self.launches += 1
        self.cwd = config.cwd
        self._workspace = create_workspace(config.runtime_dir)
        self._start_process()
        self._exit_code = self.exit_at_launch
        return self._connection()

    async def restart(self) -> KernelConnection:
        self.restarts += 1
        self._start_process()
        return self._connection()

    async def exit_code(self) -> int | None:
        return self._exit_code

    async def interrupt(self) -> None:
        self.interrupts += 1
        for wire in self.wires:
            wire.interrupted()

    async def shutdown(self, now: bool) -> None:
        self.shutdowns.append(now)
        self._launched = False
        if self._workspace is not None:
            self._workspace.remove()
        if self._exit_code is None:
            self._exit_code = 0

    def relocate(self, cwd: Path) -> None:
        self.cwd = cwd

    def log_tail(self) -> str:
        return self.log

    @property
    def launched(self) -> bool:
        return self._launched

    @property
    def exited(self) -> bool:
        return self._exit_code is not None

    @property
    def interrupt_mode(self) -> InterruptMode:
        return self._interrupt_mode

    @property
    def pid(self) -> int | None:
        return None

    @property
    def transport(self) -> str | None:
        return "fake" if self.launches else None

    @property
    def workspace(self) -> KernelWorkspace | None:
        return self._workspace

    # -- the process -------------------------------------------------------------------

    def die(self, exit_code: int = -9) -> None:
        """The process exits now; its wires go quiet."""
        self._exit_code = exit_code
        for wire in self.wires:
            wire.blocked.clear()

    @property
    def alive(self) -> bool:
        return self._launched and self._exit_code is None

    def _start_process(self) -> None:
        self._launched = True
        self._exit_code = None
        self.execution_count = 0

    def _connection(self) -> KernelConnection:
        return KernelConnection({"transport": "fake"}, self.session)


def fake_wire(
    kernel: FakeBackend,
) -> Callable[[KernelConnection, MessageHandler, MessageHandler], FakeWire]:
    """The wire factory of ``kernel``'s sessions."""
    return lambda connection, on_iopub, on_reply: FakeWire(kernel, connection, on_iopub, on_reply)


class FakeWire:
    """The sockets to a FakeBackend and the ipykernel behind them (satisfies ``KernelWire``)."""

    def __init__(
        self,
        kernel: FakeBackend,
        connection: KernelConnection,
        on_iopub: MessageHandler,
        on_reply: MessageHandler,
    ) -> None:
        self.kernel = kernel
        self.session = connection.session
        self.on_iopub = on_iopub
        self.on_reply = on_reply
        self.decode_large: Callable[[list[memoryview]], Message] = decode_parts
        self.closed = False
        self.sent: list[str] = []  # msg_types, in order
        #: Executions waiting for an interrupt (and whether it ends them with no reply).
        self.blocked: list[tuple[Message, bool]] = []
        self._waiting: list[Message] = []  # shell requests behind a blocked execution
        #: Executions waiting in input(), by the msg_id of their input_request.
        self.asking: dict[str, Message] = {}
        self._loop = asyncio.get_running_loop()
        kernel.wires.append(self)

    # -- KernelWire --------------------------------------------------------------------

    def send_shell(
        self, msg_type: str, content: dict[str, Any], buffers: Sequence[bytes] = ()
    ) -> str:
        return self._send("shell", msg_type, content)

    def send_control(self, msg_type: str, content: dict[str, Any]) -> str:
        return self._send("control", msg_type, content)

    def send_stdin(self, msg_type: str, content: dict[str, Any], parent: Message) -> str:
        reply = self.session.msg(msg_type, content, parent=parent)
        self.sent.append(msg_type)
        self._loop.call_soon(self._answered, parent["header"]["msg_id"], content)
        return str(reply["header"]["msg_id"])

    def close(self) -> None:
        self.closed = True
        self.blocked.clear()
        if self in self.kernel.wires:
            self.kernel.wires.remove(self)

    # -- the kernel's side ---------------------------------------------------------------

    def interrupted(self) -> None:
        """SIGINT reached the kernel: the blocked cells raise KeyboardInterrupt."""
        blocked, self.blocked = self.blocked, []
        for request, quietly in blocked:
            if quietly:
                self._publish(request, "status", {"execution_state": "idle"})
            else:
                self._fail(request, "KeyboardInterrupt", "")
        asking, self.asking = self.asking, {}
        for request in asking.values():
            self._fail(request, "KeyboardInterrupt", "Interrupted by user")
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            self._answer("shell", request)

    def _send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        request = self.session.msg(msg_type, content)
        self.sent.append(msg_type)
        self._loop.call_soon(self._answer, channel, request)  # the kernel answers later
        return str(request["header"]["msg_id"])

    def _answer(self, channel: str, request: Message) -> None:
        if self.closed or not self.kernel.alive or not self.kernel.responsive:
            return
        if channel == "shell" and self.blocked:  # one shell request at a time
            self._waiting.append(request)
            return
        msg_type = request["msg_type"]
        if msg_type == "kernel_info_request":
            language_info = {"name": self.kernel.language, "version": "3.12"}
            self._busy_reply_idle(request, {"status": "ok", "language_info": language_info})
        elif msg_type == "complete_request":
            code = request["content"]["code"]
            matches = [w for w in ("print", "property") if w.startswith(code)]
            content = {"status": "ok", "matches": matches, "cursor_start": 0, "metadata": {}}
            self._busy_reply_idle(request, {**content, "cursor_end": len(code)})
        elif msg_type == "interrupt_request" and self.kernel.answers_interrupt_requests:
            self.interrupted()
            self._reply(request, {"status": "ok"})
        elif msg_type == "execute_request":
            self._execute(request)

    def _execute(self, request: Message) -> None:
        code = str(request["content"]["code"])
        self.kernel.execution_count += 1
        count = self.kernel.execution_count
        self._publish(request, "status", {"execution_state": "busy"})
        self._publish(request, "execute_input", {"code": code, "execution_count": count})
        if code.startswith("die"):
            self._loop.call_soon(self.kernel.die, int(code[3:] or -9))
        elif code in ("block", "block quietly"):
            self.blocked.append((request, code == "block quietly"))
        elif code == "idle without reply":
            self._publish(request, "status", {"execution_state": "idle"})
        elif code.startswith("ask "):  # input(prompt); "ask password P": getpass
            self._ask(request, code[len("ask ") :])
        elif code.startswith("raise "):
            ename, _, evalue = code[len("raise ") :].partition(": ")
            self._fail(request, ename, evalue)
        elif code.startswith("big "):
            self._stream(request, "x" * int(code[4:]))
            self._succeed(request, count)
        else:
            self._stream(request, f"ran {code}\n")
            data = {"text/plain": repr(code)}
            result = {"data": data, "metadata": {}, "execution_count": count}
            self._publish(request, "execute_result", result)
            self._succeed(request, count)
            if code == "late":
                self._stream(request, "after idle\n")

    def _ask(self, request: Message, prompt: str) -> None:
        if not request["content"].get("allow_stdin"):
            self._fail(request, "StdinNotImplementedError", "raw_input was called, but ...")
            return
        password = prompt.startswith("password ")
        content = {"prompt": prompt.removeprefix("password "), "password": password}
        ask = self.session.msg("input_request", content, parent=request)
        self.asking[ask["header"]["msg_id"]] = request
        self._post(self.on_reply, ask)

    def _answered(self, input_request_id: str, content: dict[str, Any]) -> None:
        request = self.asking.pop(input_request_id, None)
        if request is None or self.closed:
            return
        if content.get("value") == "\x04":
            self._fail(request, "EOFError", "")
            return
        self._stream(request, f"got {content.get('value')}\n")
        self._succeed(request, self.kernel.execution_count)

    def _stream(self, request: Message, text: str) -> None:
        self._publish(request, "stream", {"name": "stdout", "text": text})

    def _succeed(self, request: Message, count: int) -> None:
        content = {"status": "ok", "execution_count": count, "user_expressions": {}}
        self._reply(request, content)
        self._publish(request, "status", {"execution_state": "idle"})

    def _fail(self, request: Message, ename: str, evalue: str) -> None:
        error = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
        self._publish(request, "error", error)
        count = self.kernel.execution_count
        self._reply(request, {"status": "error", "execution_count": count, **error})
        self._publish(request, "status", {"execution_state": "idle"})

    def _busy_reply_idle(self, request: Message, content: dict[str, Any]) -> None:
        self._publish(request, "status", {"execution_state": "busy"})
        self._reply(request, content)
        self._publish(request, "status", {"execution_state": "idle"})

    def _reply(self, request: Message, content: dict[str, Any]) -> None:
        reply_type = request["msg_type"].replace("_request", "_reply")
        self._post(self.on_reply, self.session.msg(reply_type, content, parent=request))

    def _publish(self, request: Message, msg_type: str, content: dict[str, Any]) -> None:
        self._post(self.on_iopub, self.session.msg(msg_type, content, parent=request))

    def _post(self, handler: MessageHandler, msg: Message) -> None:
        """One message arrives on a later turn of the loop, unless the wire is closed or
        the process has exited by then."""
        frames = self.session.serialize(msg)
        self._loop.call_soon(self._deliver, handler, frames)

    def _deliver(self, handler: MessageHandler, frames: list[bytes]) -> None:
        if self.closed or not self.kernel.alive:
            return
        parts = verified_parts(self.session, frames)
        large = sum(len(f) for f in frames) >= LARGE_MESSAGE_BYTES
        handler(self.decode_large(parts) if large else decode_parts(parts))


def fake_config(tmp_path: Path, **options: Any) -> KernelConfig:
    """Settings for a session on a FakeBackend: quick polls and grace periods."""
    fields: dict[str, Any] = {
        "poll_interval": 0.005,
        "reply_grace": 0.05,
        "interrupt_reply_timeout": 0.05,
        "startup_timeout": 2.0,
        **options,
    }
    return KernelConfig(
        python_path="fake-python",
        cwd=tmp_path,
        runtime_dir=tmp_path / "runtime",
        ipython_dir=tmp_path / "ipython",
        **fields,
    )


def fake_session(
    tmp_path: Path, backend: FakeBackend | None = None, **options: Any
) -> tuple[KernelSession, FakeBackend]:
    """A KernelSession (not started) on a FakeBackend and its FakeWires."""
    kernel = backend or FakeBackend()
    on_unrouted = options.pop("on_unrouted", None)
    session = KernelSession(
        fake_config(tmp_path, **options),
        on_unrouted=on_unrouted,
        backend=kernel,
        wire=fake_wire(kernel),
    )
    return session, kernel
