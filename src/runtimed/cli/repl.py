"""`runt run`: an interactive console on a runtime, document-first.

Each input becomes a cell of the runtime's room (``runtime-<id>``) that the daemon runs,
so any other client can watch or join the session live, and `runt export` can write it
out later. prompt_toolkit edits the input (history across sessions, multi-line while the
code is incomplete); outputs stream from the local replica of the document as they come.
"""

from __future__ import annotations

import asyncio
import codeop
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from runtimed.errors import RuntimedError

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
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


class OutputPrinter:
    """Prints a cell's outputs as they grow in the replica: streams by suffix, everything
    else once."""

    def __init__(self, console: Console, session: AsyncSession) -> None:
        self.console = console
        self.session = session
        self._shown: list[int] = []  # per output: characters (streams) or 1 (shown)

    async def update(self, outputs: list[dict[str, Any]]) -> None:
        for index, output in enumerate(outputs):
            if index >= len(self._shown):
                self._shown.append(0)
            if output.get("output_type") == "stream":
                text = await self._text(output.get("text"))
                if len(text) > self._shown[index]:
                    stream = sys.stderr if output.get("name") == "stderr" else sys.stdout
                    stream.write(text[self._shown[index] :])
                    stream.flush()
                    self._shown[index] = len(text)
            elif not self._shown[index]:
                self._shown[index] = 1
                await self._show(output)

    async def _text(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "blob" in value:
            return (await self.session.get_blob(value["blob"])).decode("utf-8", "replace")
        if isinstance(value, list):
            return "".join([await self._text(part) for part in value])
        return ""

    async def _show(self, output: dict[str, Any]) -> None:
        kind = output.get("output_type")
        if kind == "error":
            sys.stdout.write("\n".join(output.get("traceback") or []) + "\n")
            sys.stdout.flush()
            return
        data = output.get("data") or {}
        text = data.get("text/plain")
        if kind == "execute_result":
            count = output.get("execution_count")
            prefix = f"[red]Out[{count}]:[/red] "
            self.console.print(prefix, end="")
        if text is not None:
            sys.stdout.write(await self._text(text) + "\n")
        else:
            kinds = ", ".join(m for m in data if not m.startswith("application/vnd.jupyter"))
            self.console.print(f"[dim]<{kinds or 'display'} output: see runt export>[/dim]")
        sys.stdout.flush()


class Repl:
    """One console on one runtime."""

    def __init__(self, session: AsyncSession, runtime: RuntimeInfo, console: Console) -> None:
        self.session = session
        self.runtime = runtime
        self.console = console
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
        self._submitting, self._interrupt_pending = True, False
        try:
            cell_id = await self.session.create_cell(code)
            execution_id = await self.session.queue_cell(cell_id)
        finally:
            self._submitting = False
        done = asyncio.ensure_future(self.session.wait_for_execution(execution_id))
        printer = OutputPrinter(self.console, self.session)
        self._interrupts = []
        self._running = True
        if self._interrupt_pending:
            self._on_sigint()
        try:
            with self._ctrl_c_interrupts():
                while not done.done():
                    await printer.update(self.session.document.get_cell(cell_id).outputs)
                    await asyncio.wait({done}, timeout=POLL_SECS)
        finally:
            self._running = False
        for task in self._interrupts:
            with contextlib.suppress(RuntimedError):
                await task
        result = done.result()
        await printer.update(self.session.document.get_cell(cell_id).outputs)
        if result.execution_count:
            self.count = result.execution_count + 1
        elif not result.success and result.error is None:
            self.console.print(f"[yellow]{result.status}[/yellow]")

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
            if code.strip():
                await self.run_cell(code.rstrip())
                self.console.print()


def _indent(line: str, language: str | None) -> str:
    """The next line's indentation: the current one's, one level more after a colon."""
    indent = line[: len(line) - len(line.lstrip())]
    if language in (None, "python") and line.rstrip().endswith(":"):
        indent += "    "
    return indent


def make_prompt(language: str | None) -> PromptSession[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    from runtimed.paths import default_cache_dir, ensure_private_dir

    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        if is_complete(buffer.text, language):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n" + _indent(buffer.document.current_line, language))

    history = ensure_private_dir(default_cache_dir()) / "repl_history"
    return PromptSession(
        history=FileHistory(str(history)),
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
            repl = Repl(session, runtime, console)
            how = "joined" if attach else "started"
            console.print(
                f"[dim]{how} runtime {runtime.runtime_id} ({runtime.kernel_name}, "
                f"{runtime.env_source or 'own env'}); Ctrl-D exits[/dim]"
            )
            if sidecar:  # rich outputs in a browser page beside the terminal (open_cli)
                from runtimed.cli.open_cli import open_sidecar

                note = await asyncio.to_thread(open_sidecar, runtime.runtime_id, socket)
                console.print(note, style="dim", markup=False, highlight=False)
            await repl.loop(make_prompt(runtime.language))
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
