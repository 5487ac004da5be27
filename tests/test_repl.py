"""`runt run` in a real pseudo-terminal (pexpect): prompts, streaming, Ctrl-C, Ctrl-D,
then `runt export` of the session, validated with nbformat."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pexpect
import pytest
from rich.console import Console

import runtimed
from helpers import DaemonProcess, wait_until
from runtimed.cli.repl import Repl, is_complete

BIN = Path(sys.executable).parent


def test_python_input_is_complete_as_in_the_interpreter() -> None:
    assert is_complete("2 + 3", "python")
    assert not is_complete("for i in range(3):", "python")
    assert not is_complete("for i in range(3):\n    print(i)", "python")
    assert is_complete("for i in range(3):\n    print(i)\n", "python")
    assert is_complete("for i in range(3):\n    print(i)\n    ", "python")
    assert is_complete("1 +* 2", "python")  # a syntax error runs, to be shown
    assert not is_complete("echo a \\", "bash") and is_complete("echo a", "bash")


@pytest.fixture(scope="module")
def repl_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("repl") / "cache", ["--uv-pool-size", "2"])
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def spawn(d: DaemonProcess, *args: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        str(BIN / "runt"), ["run", *args, "--socket", str(d.socket_path)],
        env=env, encoding="utf-8", timeout=60, dimensions=(40, 120),
    )  # fmt: skip
    return child


@pytest.mark.daemon
def test_console_runs_streams_interrupts_exits_and_exports(
    repl_daemon: DaemonProcess, tmp_path: Path
) -> None:
    child = spawn(repl_daemon)
    try:
        child.expect(r"started runtime (\w+)")
        runtime_id = child.match.group(1)
        child.expect(r"In \[1\]: ")
        child.sendline("2 + 3")
        child.expect(r"Out\[1\]: 5")
        child.expect(r"In \[2\]: ")
        # A block: Enter continues (auto-indented) until an empty line.
        child.send("for i in range(2):\r")
        child.send("print('line', i)\r\r")
        child.expect("line 0")
        child.expect("line 1")
        child.expect(r"In \[3\]: ")
        # Output streams while the cell runs; Ctrl-C interrupts it.
        child.sendline("import time; print('be' + 'fore', flush=True); time.sleep(30)")
        child.expect("before")  # the output (the echoed input does not have it)
        child.sendintr()
        child.expect("KeyboardInterrupt")
        child.expect(r"In \[4\]: ")
        child.sendintr()  # at an empty prompt: nothing surprising (no exit, no traceback)
        child.sendline("1/0")
        child.expect("ZeroDivisionError")
        child.expect(r"In \[5\]: ")
        # Keys typed while a cell runs wait for the next prompt, as in IPython.
        child.sendline("import time; print('st' + 'arted', flush=True); time.sleep(1.5)")
        child.expect("started")
        child.send("print('type' + 'ahead')\r")
        child.expect("typeahead")
        child.expect(r"In \[7\]: ")
        # A Ctrl-C read together with the Enter (the prompt read past it) still interrupts.
        child.send("time.sleep(30)\r\x03")
        child.expect("KeyboardInterrupt", timeout=20)
        child.expect(r"In \[8\]: ")
        child.sendeof()
        child.expect(f'Runtime "{runtime_id}" exited with no errors. To export a notebook')
        child.expect(f"runt export {runtime_id} --notebook")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0

    with repl_daemon.client() as client:  # the runtime ended with the console
        assert runtime_id not in [r.runtime_id for r in client.list_runtimes()]
    out = tmp_path / "repl.ipynb"
    exported = subprocess.run(
        [str(BIN / "runt"), "export", runtime_id, "--notebook", "-o", str(out),
         "--socket", str(repl_daemon.socket_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    sources = [c.source for c in nb.cells]
    assert sources[0] == "2 + 3" and sources[1].startswith("for i in range(2):\n    print")
    assert nb.cells[0].outputs[0]["data"]["text/plain"] == "5"
    assert nb.cells[0].execution_count == 1
    assert "KeyboardInterrupt" in [o.get("ename") for o in nb.cells[2].outputs], nb.cells[2]
    assert nb.cells[3].outputs[0]["ename"] == "ZeroDivisionError"
    assert nb.metadata.kernelspec.language == "python"


@pytest.mark.daemon
def test_attach_joins_a_runtime_that_another_client_watches(repl_daemon: DaemonProcess) -> None:
    with repl_daemon.client() as client:
        runtime = client.start_runtime("python3")
    watcher = runtimed.Session(runtime.notebook_id, socket_path=repl_daemon.socket_path)
    child = spawn(repl_daemon, "--attach", runtime.runtime_id[:5])
    try:
        child.expect(r"joined runtime")
        child.expect(r"In \[1\]: ")
        child.sendline("'shared' * 2")
        child.expect(r"Out\[1\]: 'sharedshared'")
        # The input is a cell of the runtime's notebook: the other client sees it live.
        with watcher:
            wait_until(lambda: [c.source for c in watcher.get_cells()] == ["'shared' * 2"])
        child.expect(r"In \[2\]: ")  # Ctrl-D only once the console reads input again
        child.sendeof()
        child.expect(re.escape(f'Left runtime "{runtime.runtime_id}"'))
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    with repl_daemon.client() as client:  # an attached console leaves the runtime running
        assert runtime.runtime_id in [r.runtime_id for r in client.list_runtimes()]
        client.kill_runtimes([runtime.runtime_id])


@pytest.mark.daemon
def test_run_without_a_terminal_says_so(repl_daemon: DaemonProcess) -> None:
    r = subprocess.run(
        [str(BIN / "runt"), "run", "--socket", str(repl_daemon.socket_path)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr.startswith("error: runt run needs a terminal")


async def test_a_prompt_read_before_the_queue_reply_is_still_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cell's first input_request can be handled in the same read as the reply to
    queue_cell, before the console knows the execution's id: it must not be dropped (the
    console then waited for a prompt that never showed)."""
    finished = asyncio.Event()
    asked: list[str] = []

    class Session:
        document = SimpleNamespace(
            get_cell=lambda cell_id: SimpleNamespace(outputs=[]), get_cells=lambda: []
        )

        async def create_cell(self, code: str) -> str:
            return "cell-1"

        async def queue_cell(self, cell_id: str, stdin: bool) -> str:
            repl.on_event({"event": "input_request", "execution_id": "ex-1", "prompt": "x? "})
            repl.on_event({"event": "input_request", "execution_id": "other", "prompt": "no"})
            return "ex-1"

        async def wait_for_execution(self, execution_id: str) -> Any:
            await finished.wait()
            return SimpleNamespace(execution_count=1, success=True, error=None, status="done")

    async def answer(self: Repl, event: dict[str, Any], done: Any) -> None:
        asked.append(str(event["prompt"]))
        finished.set()

    monkeypatch.setattr(Repl, "_answer", answer)
    repl = Repl(Session(), SimpleNamespace(), Console(file=io.StringIO()))  # type: ignore[arg-type]
    await asyncio.wait_for(repl.run_cell("print(input('x? '))"), 10)
    assert asked == ["x? "]
