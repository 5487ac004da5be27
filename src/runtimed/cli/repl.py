"""`runt run`: an interactive console on a runtime, document-first.

Each input becomes a cell of the runtime's room (``runtime-<id>``) that the daemon runs,
so any other client can watch or join the session live, and `runt export` can write it
out later. prompt_toolkit edits the input: multi-line while the code is incomplete, with
auto-indent; Tab completes from the kernel, ``obj?`` / ``obj??`` and Shift-Tab show its
help (``console_completion``); Up and Ctrl-R recall this runtime's and earlier inputs
from the daemon's history (``console_history``). Outputs stream from the local replica
of the document as they come (``console_render``). A cell's ``input()`` and
``getpass()`` prompt here (the cell is queued with stdin; a password is not echoed).
"""

from __future__ import annotations

import asyncio
import codeop
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from runtimed.cli.console_completion import help_request, help_text
from runtimed.errors import RuntimedError

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import History
    from prompt_toolkit.input import Input
    from prompt_toolkit.key_binding import KeyPress
    from rich.console import Console

    from runtimed.client.async_session import AsyncSession
    from runtimed.protocol.runtimes import RuntimeInfo

#: How often running outputs are looked at (seconds).
POLL_SECS = 0.03


def exit_hint(runtime_id: str) -> str:
    return (
        f'Runtime "{runtime_id}" exited with no errors. To export a notebook from your '
        f"session, run runt export {runtime_id} --notebook"
    )


def is_complete(code: str, language: str | None) -> bool:
    """Python: complete as the interactive interpreter sees it (a block ends on an empty
    line; a syntax error is complete, to be shown). Other languages: a line ending in a
    backslash continues."""
    if not code.strip():
        return True
    if language not in (None, "python"):
        return not code.endswith("\\")
    lines = code.split("\n")
    if len(lines) > 1 and not lines[-1].strip():  # an empty (auto-indented) line ends it
        code = code.rstrip() + "\n"
    try:
        return codeop.compile_command(code, "<input>", "single") is not None
    except (SyntaxError, ValueError, OverflowError):
        return True


class Repl:
    """One console on one runtime."""

    def __init__(
        self,
        session: AsyncSession,
        runtime: RuntimeInfo,
        console: Console,
        blob_url: str | None = None,
    ) -> None:
        self.session = session
        self.runtime = runtime
        self.console = console
        self.blob_url = blob_url
        #: input_request / input_cancelled events of the running cell, in order.
        self._asks: list[dict[str, Any]] = []
        #: Those that came while the cell was being queued: its first prompt can arrive in
        #: the same read as the queue reply, before this console knows the execution's id.
        self._early: list[dict[str, Any]] = []
        self._asked = asyncio.Event()
        self._execution_id: str | None = None
        self._running = False
        self._submitting = False
        self._interrupt_pending = False
        self._interrupts: list[asyncio.Future[int]] = []
        self.count = 1 + max(
            (c.execution_count or 0 for c in session.document.get_cells()), default=0
        )

    async def run_cell(self, code: str) -> None:
        """Queue ``code`` as a new cell, stream its outputs, Ctrl-C interrupts it (also
        one pressed while the cell is still being queued)."""
        from runtimed.cli.console_render import OutputPrinter

        self._submitting, self._interrupt_pending = True, False
        self._asks, self._early, self._execution_id = [], [], None
        try:
            cell_id = await self.session.create_cell(code)
            execution_id = await self.session.queue_cell(cell_id, stdin=True)
        finally:
            self._submitting = False
        self._execution_id = execution_id
        early, self._early = self._early, []
        self._asks = [e for e in early if e.get("execution_id") == execution_id]
        done = asyncio.ensure_future(self.session.wait_for_execution(execution_id))
        printer = OutputPrinter(self.console, self.session, self.blob_url)
        self._interrupts = []
        self._running = True
        if self._interrupt_pending:
            self._on_sigint()
        try:
            while not done.done():
                with self._ctrl_c_interrupts():
                    while not done.done() and not self._asks:
                        await printer.update(self.session.document.get_cell(cell_id).outputs)
                        await self._wait(done, timeout=POLL_SECS)
                if self._asks:
                    await printer.update(self.session.document.get_cell(cell_id).outputs)
                    await self._answer(self._asks.pop(0), done)
        finally:
            self._running = False
            self._execution_id = None
        for task in self._interrupts:
            with contextlib.suppress(RuntimedError):
                await task
        result = done.result()
        await printer.update(self.session.document.get_cell(cell_id).outputs)
        if result.execution_count:
            self.count = result.execution_count + 1
        elif not result.success and result.error is None:
            self.console.print(f"[yellow]{result.status}[/yellow]")

    def on_event(self, event: dict[str, Any]) -> None:
        """Room events: the running cell's prompts (only this client is asked)."""
        if event.get("event") not in ("input_request", "input_cancelled"):
            return
        if self._submitting:  # its execution id is not known yet (see _early)
            self._early.append(event)
        elif event.get("execution_id") == self._execution_id:
            self._asks.append(event)
            self._asked.set()

    async def _answer(self, event: dict[str, Any], done: asyncio.Future[Any]) -> None:
        """Prompt for the cell's ``input()`` (hidden for getpass) until answered, the cell
        ends or the prompt is cancelled; Ctrl-C interrupts the cell, Ctrl-D is EOF."""
        if event.get("event") != "input_request":
            return  # cancelled before it was shown
        from prompt_toolkit import PromptSession

        asking: PromptSession[str] = PromptSession()
        prompt = asyncio.ensure_future(
            _ask(asking, str(event.get("prompt") or ""), bool(event.get("password")))
        )
        while not prompt.done() and not done.done() and not self._asks:
            await self._wait(prompt, done)
        if not prompt.done():
            prompt.cancel()  # the cell ended or was interrupted meanwhile
            with contextlib.suppress(BaseException):
                await prompt
            return
        try:
            value = prompt.result()
        except EOFError:
            value = "\x04"
        if value is None:  # Ctrl-C
            self._on_sigint()
            return
        with contextlib.suppress(RuntimedError):
            await self.session.send_input(str(event["execution_id"]), value)

    async def _wait(self, *futures: asyncio.Future[Any], timeout: float | None = None) -> None:
        """Until one of ``futures`` is done, a prompt event comes, or ``timeout``."""
        self._asked.clear()
        asked = asyncio.ensure_future(self._asked.wait())
        try:
            await asyncio.wait({*futures, asked}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            asked.cancel()

    @contextlib.contextmanager
    def _ctrl_c_interrupts(self) -> Iterator[None]:
        """While a cell runs, the terminal is read in raw mode and Ctrl-C is a key: it
        then interrupts however the terminal was left (a SIGINT does the same). Other keys
        typed meanwhile are kept for the next prompt, as IPython does."""
        if not sys.stdin.isatty():
            yield
            return
        from prompt_toolkit.input import create_input
        from prompt_toolkit.input.typeahead import get_typeahead

        keys = create_input()
        # The prompt may have read keys past its Enter (a Ctrl-C right after it, say).
        self._take_keys(keys, get_typeahead(keys))
        with keys.raw_mode(), keys.attach(lambda: self._take_keys(keys, keys.read_keys())):
            yield
        self._take_keys(keys, keys.flush_keys())

    def _take_keys(self, keys: Input, presses: list[KeyPress]) -> None:
        """Ctrl-C interrupts the cell; any other key waits for the next prompt."""
        from prompt_toolkit.input.typeahead import store_typeahead
        from prompt_toolkit.keys import Keys

        if any(press.key == Keys.ControlC for press in presses):
            self._on_sigint()
        store_typeahead(keys, [press for press in presses if press.key != Keys.ControlC])

    def _on_sigint(self) -> None:
        """Ctrl-C: interrupts the running cell. At the prompt prompt_toolkit reads it as a
        key; a SIGINT while the cell is being queued interrupts it once it is."""
        if self._running:
            self._interrupts.append(asyncio.ensure_future(self.session.interrupt()))
        elif self._submitting:
            self._interrupt_pending = True

    async def loop(self, prompt: PromptSession[str]) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        try:
            await self._loop(prompt)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    async def _loop(self, prompt: PromptSession[str]) -> None:
        while True:
            try:
                # Our SIGINT handler stays in place (prompt_toolkit would remove it on
                # return); in raw mode Ctrl-C reaches the prompt as a key anyway.
                code = await prompt.prompt_async(
                    [("ansigreen", f"In [{self.count}]: ")], handle_sigint=False
                )
            except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the input, as IPython
                continue
            except EOFError:  # Ctrl-D
                return
            if not code.strip():
                continue
            help_for = help_request(code)
            if help_for is not None:  # obj? / obj??: the kernel's help, nothing runs
                name, level = help_for
                sys.stdout.write(await help_text(self.session, name, len(name), level) + "\n\n")
                continue
            await self.run_cell(code.rstrip())
            self.console.print()


def _indent(line: str, language: str | None) -> str:
    """The next line's indentation: the current one's, one level more after a colon."""
    indent = line[: len(line) - len(line.lstrip())]
    if language in (None, "python") and line.rstrip().endswith(":"):
        indent += "    "
    return indent


def make_prompt(
    language: str | None,
    session: AsyncSession | None = None,
    history: History | None = None,
) -> PromptSession[str]:
    """The input editor; with ``session``, Tab completes and Shift-Tab shows help from
    its kernel."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.application import run_in_terminal
    from prompt_toolkit.filters import is_searching
    from prompt_toolkit.key_binding import KeyBindings

    from runtimed.cli.console_completion import KernelCompleter

    bindings = KeyBindings()

    if session is not None:

        @bindings.add("s-tab")
        async def _inspect(event: Any) -> None:
            document = event.current_buffer.document
            text = await help_text(session, document.text, document.cursor_position, 0)
            await run_in_terminal(lambda: sys.stdout.write(text + "\n"), in_executor=False)

    @bindings.add("enter", filter=~is_searching)  # in Ctrl-R, Enter accepts the match
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        if is_complete(buffer.text, language):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n" + _indent(buffer.document.current_line, language))

    return PromptSession(
        history=history,
        completer=KernelCompleter(session) if session is not None else None,
        complete_while_typing=False,
        key_bindings=bindings,
        multiline=True,
        prompt_continuation=lambda width, line, wrap: "...: ".rjust(width),
        enable_history_search=True,
    )


async def run_repl(
    socket: str | None,
    kernel: str,
    env_source: str,
    attach: str | None,
    cwd: str,
    sidecar: bool = False,
) -> str:
    """Start (or join) a runtime and run the console until Ctrl-D; returns the message
    to print. A runtime this console started is stopped when it exits."""
    from rich.console import Console

    from runtimed.cli.console_history import load_history
    from runtimed.client import AsyncDaemonClient
    from runtimed.client.async_session import AsyncSession

    console = Console(highlight=False)
    async with AsyncDaemonClient(socket) as client:
        if attach is not None:
            runtime = await _find(client, attach)
        else:
            with console.status(f"starting {kernel}..."):
                runtime = await client.start_runtime(kernel, env_source, cwd)
        session = AsyncSession(runtime.notebook_id, socket_path=socket)
        try:
            await session.connect()
            info = await client.daemon_info()
            blob_url = f"http://127.0.0.1:{info.blob_port}" if info.blob_port else None
            repl = Repl(session, runtime, console, blob_url)
            session.add_listener(repl.on_event)
            history = await load_history(client, runtime.runtime_id)
            how = "joined" if attach else "started"
            console.print(
                f"[dim]{how} runtime {runtime.runtime_id} ({runtime.kernel_name}, "
                f"{runtime.env_source or 'own env'}); Ctrl-D exits[/dim]"
            )
            if sidecar:  # rich outputs in a browser page beside the terminal (open_cli)
                from runtimed.cli.open_cli import open_sidecar

                note = await asyncio.to_thread(open_sidecar, runtime.runtime_id, socket)
                console.print(note, style="dim", markup=False, highlight=False)
            await repl.loop(make_prompt(runtime.language, session, history))
        finally:
            await session.close()
            if attach is None:
                with contextlib.suppress(RuntimedError):
                    await client.kill_runtimes([runtime.runtime_id])
    if attach is not None:
        return f'Left runtime "{runtime.runtime_id}" (still running; `runt kill` stops it).'
    return exit_hint(runtime.runtime_id)


async def _find(client: Any, attach: str) -> RuntimeInfo:
    runtimes = await client.list_runtimes()
    matches = [r for r in runtimes if r.runtime_id == attach] or [
        r for r in runtimes if r.runtime_id.startswith(attach)
    ]
    if len(matches) != 1:
        known = ", ".join(r.runtime_id for r in runtimes) or "none running"
        raise RuntimedError(f"no runtime {attach!r} to attach to (runtimes: {known})", "not_found")
    runtime: RuntimeInfo = matches[0]
    return runtime


async def _ask(asking: PromptSession[str], text: str, password: bool) -> str | None:
    """The answer to a cell's prompt, None for Ctrl-C. A task that raises KeyboardInterrupt
    re-raises it out of the event loop (asyncio's rule), which would end the console."""
    try:
        return await asking.prompt_async(text, is_password=password, handle_sigint=False)
    except KeyboardInterrupt:
        return None
