"""input() and getpass() through a real daemon and a real ipykernel: Session.run with
stdin= (a callable or answers), AsyncSession with an async callable, StdinNotAvailable
without, only the client that ran the cell may answer, an interrupt cancels a prompt,
and the MCP tools (execute_cell says waiting_for_input, send_input answers)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runtimed
from helpers import DaemonProcess, wait_until
from mcp_host import start_agent
from runtimed.client.async_session import AsyncSession
from runtimed.errors import RuntimedError

pytestmark = pytest.mark.daemon


@pytest.fixture(scope="module")
def stdin_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("stdin") / "cache", ["--uv-pool-size", "2"])
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def session(d: DaemonProcess, notebook_id: str) -> runtimed.Session:
    return runtimed.Session(notebook_id, socket_path=d.socket_path).connect()


def test_session_run_answers_input_and_getpass(stdin_daemon: DaemonProcess) -> None:
    s = session(stdin_daemon, "answers")
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return {"name? ": "ada", "pin: ": "1234"}[prompt]

    code = (
        "import getpass\nname = input('name? ')\npin = getpass.getpass('pin: ')\nprint(name, pin)"
    )
    r = s.run(code, stdin=ask)
    assert r.success, r.error
    assert r.stdout == "ada 1234\n" and prompts == ["name? ", "pin: "]
    # An iterable gives the answers in order; used up, input() reads end of input.
    r = s.run("print(input('a'), input('b'))\ninput('c')", stdin=["1", "2"])
    assert r.stdout == "1 2\n"
    assert r.error is not None and r.error.ename == "EOFError"
    s.close()


def test_without_stdin_input_raises_stdin_not_available(stdin_daemon: DaemonProcess) -> None:
    s = session(stdin_daemon, "no-stdin")
    r = s.run("input('x? ')")
    assert r.status == "error" and r.error is not None
    assert r.error.ename == "StdinNotAvailable"
    assert "stdin=" in r.error.evalue
    assert r.message is not None and r.message.startswith("StdinNotAvailable")
    s.close()


def test_async_session_with_an_async_callable(stdin_daemon: DaemonProcess) -> None:
    async def main() -> Any:
        async with AsyncSession("async-stdin", stdin_daemon.socket_path) as s:

            async def ask(prompt: str) -> str:
                await asyncio.sleep(0)
                return prompt.upper()

            return await s.run("print(input('shout '))", stdin=ask)

    r = asyncio.run(main())
    assert r.success and r.stdout == "SHOUT \n"


def test_only_the_client_that_ran_it_answers_and_an_interrupt_cancels(
    stdin_daemon: DaemonProcess,
) -> None:
    owner, other = session(stdin_daemon, "owner"), session(stdin_daemon, "owner")
    events: list[dict[str, Any]] = []
    seen = threading.Event()

    def listen(event: dict[str, Any]) -> None:
        if event.get("event", "").startswith("input_"):
            events.append(event)
            seen.set()

    other_events: list[dict[str, Any]] = []
    owner.add_listener(listen)
    other.add_listener(other_events.append)
    cell = owner.create_cell("x = input('wait: ')")
    execution_id = owner.queue_cell(cell, stdin=True)
    assert seen.wait(60), "no input_request came"
    assert events[0]["prompt"] == "wait: " and events[0]["password"] is False
    with pytest.raises(RuntimedError) as refused:
        other.send_input(execution_id, "not mine")
    assert refused.value.code == "not_your_execution"
    assert not [e for e in other_events if e.get("event") == "input_request"]
    owner.interrupt()
    result = owner.wait_for_execution(execution_id, 30)
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"
    wait_until(lambda: events[-1]["event"] == "input_cancelled", 5)
    with pytest.raises(RuntimedError) as late:
        owner.send_input(execution_id, "too late")
    assert late.value.code == "not_waiting_for_input"
    # The kernel is fine afterwards, and a prompt answered by hand works.
    seen.clear()
    execution_id = owner.queue_cell(owner.create_cell("print(input('again: ') * 2)"), stdin=True)
    assert seen.wait(60)
    owner.send_input(execution_id, "ab")
    assert owner.wait_for_execution(execution_id, 30).stdout == "abab\n"
    owner.close()
    other.close()


def test_a_client_that_leaves_while_asked_is_answered_eof(stdin_daemon: DaemonProcess) -> None:
    watcher, leaver = session(stdin_daemon, "leaver"), session(stdin_daemon, "leaver")
    asked = threading.Event()
    leaver.add_listener(lambda e: asked.set() if e.get("event") == "input_request" else None)
    execution_id = leaver.queue_cell(leaver.create_cell("input('bye? ')"), stdin=True)
    assert asked.wait(60)
    leaver.close()
    result = watcher.wait_for_execution(execution_id, 30)
    assert result.error is not None and result.error.ename == "EOFError"
    watcher.close()


def test_mcp_execute_cell_waits_for_input_and_send_input_answers(
    stdin_daemon: DaemonProcess, tmp_path: Path
) -> None:
    async def main() -> None:
        agent = await start_agent(stdin_daemon, tmp_path)
        try:
            await agent.ok("create_notebook", path=str(tmp_path / "ask.ipynb"))
            code = "import getpass\nname = input('your name? ')\nprint('hi', name)\n"
            code += "pin = getpass.getpass('pin: ')\nprint(len(pin))"
            text, info, _ = await agent.ok("create_cell", source=code, run=True, timeout=120)
            assert info["waiting_for_input"] is True and info["prompt"] == "your name? "
            assert "waiting for input: prompt 'your name? '" in text and "send_input" in text
            eid = info["execution_id"]
            text, info, _ = await agent.ok("send_input", execution_id=eid, value="ada")
            assert info["prompt"] == "pin: " and "a password (getpass)" in text
            text, info, _ = await agent.ok("send_input", execution_id=eid, value="1234")
            assert info["status"] == "done" and info["waiting_for_input"] is False
            assert "hi ada\n4" in text
            # get_results on a waiting cell says so too; an interrupt ends the wait.
            _, info, _ = await agent.ok("create_cell", source="input('never? ')", run=True)
            eid = info["execution_id"]
            _, info, _ = await agent.ok("get_results", execution_id=eid, timeout=5)
            assert info["waiting_for_input"] is True
            await agent.ok("interrupt_kernel")
            _, info, _ = await agent.ok("get_results", execution_id=eid, timeout=30)
            assert info["status"] == "error" and not info["waiting_for_input"]
            error = await agent.error("send_input", execution_id=eid, value="late")
            assert "is not waiting for input" in error
        finally:
            await agent.close()

    asyncio.run(main())
