"""KernelSession in-process, on its two seams' doubles (``kernel_doubles``): lifecycle,
readiness, routing, death, interrupt, restart and shutdown without a kernel process.
The same session against real ipykernels: test_kernels.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel_doubles import FakeBackend, fake_session
from runtimed.daemon.kernels import (
    ExecutionAbortedError,
    KernelDiedError,
    KernelError,
    KernelLifecycle,
    KernelNotRunningError,
    KernelStartError,
    KernelState,
    Message,
    UnsupportedLanguageError,
)
from runtimed.daemon.kernels.channels import decode_parts


async def until(predicate: Callable[[], object], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def running_a_cell(kernel: FakeBackend) -> Callable[[], bool]:
    """True once the kernel runs a blocked cell (a SIGINT before that is lost)."""
    return lambda: any(wire.blocked for wire in kernel.wires)


async def test_a_cell_runs_like_on_ipykernel(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path)
    states: list[KernelState] = []
    session.add_listener(states.append)
    await session.start()
    assert session.kernel_info["language_info"]["name"] == "python"
    assert session.is_alive and session.transport == "fake" and session.pid is None

    messages: list[Message] = []
    reply = await session.execute("x = 1", messages.append)
    assert reply.success and reply.execution_count == 1
    assert [m["msg_type"] for m in messages] == [
        "status",
        "execute_input",
        "stream",
        "execute_result",
        "status",
    ]
    assert messages[2]["content"]["text"] == "ran x = 1\n"
    assert messages[-1]["content"]["execution_state"] == "idle"
    error = await session.execute("raise ValueError: boom")
    assert (error.status, error.ename, error.evalue) == ("error", "ValueError", "boom")
    lifecycles = [s.lifecycle for s in states]
    assert lifecycles[:2] == [KernelLifecycle.LAUNCHING, KernelLifecycle.RUNNING]
    assert {s.activity for s in states[2:]} == {"busy", "idle"}
    assert session.state.activity == "idle"
    await session.shutdown()
    assert kernel.shutdowns == [False] and session.lifecycle is KernelLifecycle.SHUTDOWN


async def test_iteration_and_late_output(tmp_path: Path) -> None:
    late: list[Message] = []
    session, _ = fake_session(tmp_path, on_unrouted=late.append)
    async with session:
        execution = session.submit("late")
        kinds = [msg["msg_type"] async for msg in execution]
        assert kinds[-1] == "status" and "execute_result" in kinds
        assert (await execution.reply()).success
        await until(lambda: late)
        assert [m["content"]["text"] for m in late] == ["after idle\n"]


async def test_a_kernel_that_exits_while_starting_fails_with_its_output(tmp_path: Path) -> None:
    kernel = FakeBackend(exit_at_launch=1, log="ModuleNotFoundError: No module named 'x'")
    session, _ = fake_session(tmp_path, kernel)
    with pytest.raises(KernelStartError) as info:
        await session.start()
    assert "exit code 1" in info.value.message and "No module named" in info.value.stderr
    assert session.state.lifecycle is KernelLifecycle.DEAD and session.state.exit_code == 1
    assert kernel.shutdowns == [True] and not kernel.launched
    kernel.exit_at_launch = None  # a later start launches afresh
    await session.start()
    assert session.lifecycle is KernelLifecycle.RUNNING and kernel.launches == 2
    await session.shutdown(now=True)


async def test_languages_are_checked_before_and_after_launch(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path, language="R")
    with pytest.raises(UnsupportedLanguageError):
        await session.start()
    assert kernel.launches == 0
    session, kernel = fake_session(tmp_path, FakeBackend(language="julia"))
    with pytest.raises(KernelStartError, match="speaks 'julia'"):
        await session.start()
    assert session.lifecycle is KernelLifecycle.DEAD and kernel.shutdowns == [True]


async def test_a_silent_kernel_times_out(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path, FakeBackend(), startup_timeout=0.1)
    kernel.responsive = False
    with pytest.raises(KernelStartError, match="no reply"):
        await session.start()
    kernel.responsive = True
    await session.start()
    kernel.responsive = False
    with pytest.raises(KernelError) as info:
        await session.ping(0.05)
    assert info.value.code == "kernel_timeout"
    await session.shutdown(now=True)


async def test_death_mid_cell_fails_it_and_a_start_restarts(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path)
    await session.start()
    seen: list[str] = []
    with pytest.raises(KernelDiedError) as info:
        await session.execute("die 3", lambda m: seen.append(m["msg_type"]))
    assert info.value.exit_code == 3 and seen == ["status", "execute_input"]
    assert session.state.lifecycle is KernelLifecycle.DEAD and session.state.exit_code == 3
    assert not session.is_alive and not kernel.wires  # the wire was closed
    with pytest.raises(KernelNotRunningError):
        session.submit("1")
    await session.start()  # a dead kernel that ran restarts on the same connection
    assert kernel.restarts == 1 and kernel.launches == 1
    assert (await session.execute("1")).execution_count == 1
    await session.shutdown(now=True)


async def test_restart_and_shutdown_abort_what_is_pending(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path)
    await session.start()
    await session.execute("a")
    blocked = session.submit("block")
    ping = asyncio.ensure_future(session.ping(5))  # waits behind the blocked cell
    await until(running_a_cell(kernel))
    await session.restart()
    with pytest.raises(ExecutionAbortedError, match="restarted"):
        await blocked.reply()
    with pytest.raises(ExecutionAbortedError, match="restarted"):
        await ping
    assert (await session.execute("b")).execution_count == 1  # a fresh namespace
    blocked = session.submit("block")
    await session.shutdown()
    await session.shutdown()  # idempotent
    with pytest.raises(ExecutionAbortedError, match="shut down"):
        await blocked.wait()
    assert kernel.shutdowns == [False] and session.lifecycle is KernelLifecycle.SHUTDOWN
    with pytest.raises(KernelNotRunningError):
        await session.restart()


async def test_interrupt_by_signal(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path)
    async with session:
        execution = session.submit("block")
        await until(running_a_cell(kernel))
        await session.interrupt()
        reply = await execution.wait()
        assert reply.ename == "KeyboardInterrupt" and not reply.synthesized
        assert kernel.interrupts == 1


async def test_interrupt_by_message_falls_back_to_the_backend(tmp_path: Path) -> None:
    kernel = FakeBackend(interrupt_mode="message")
    session, _ = fake_session(tmp_path, kernel)
    async with session:
        execution = session.submit("block")
        await session.interrupt()
        assert (await execution.reply()).ename == "KeyboardInterrupt"
        assert kernel.interrupts == 0 and kernel.wires[0].sent[-1] == "interrupt_request"
        kernel.answers_interrupt_requests = False
        execution = session.submit("block")
        await session.interrupt()
        assert (await execution.reply()).ename == "KeyboardInterrupt"
        assert kernel.interrupts == 1


async def test_idle_without_a_reply_ends_the_execution(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path)
    async with session:
        reply = await session.execute("idle without reply")
        assert reply.synthesized and reply.ename == "KernelError"
        execution = session.submit("block quietly")
        await until(running_a_cell(kernel))
        await session.interrupt()
        reply = await execution.reply()
        assert reply.synthesized and reply.ename == "KeyboardInterrupt"


async def test_completion_and_ping(tmp_path: Path) -> None:
    session, _ = fake_session(tmp_path)
    async with session:
        await session.ping(1)
        result = await session.complete("pr", 2)
        assert result.matches == ("print", "property") and result.cursor_end == 2


async def test_the_large_message_decoder_survives_restarts(tmp_path: Path) -> None:
    session, _ = fake_session(tmp_path)
    decoded: list[int] = []

    def decode(parts: list[memoryview]) -> Message:
        decoded.append(len(parts[4]))
        return decode_parts(parts)

    async with session:
        session.set_large_message_decoder(decode)  # as a room does once it has the kernel
        texts: list[str] = []
        await session.execute("big 2000000", lambda m: texts.append(m["content"].get("text", "")))
        await session.execute("big 10")
        await session.restart()
        await session.execute("big 1500000")
        assert len(decoded) == 2 and len("".join(texts)) == 2_000_000


async def test_relocate_reaches_the_backend(tmp_path: Path) -> None:
    session, kernel = fake_session(tmp_path)
    async with session:
        session.relocate(tmp_path / "notebook")
        assert session.config.cwd == kernel.cwd == tmp_path / "notebook"


async def test_a_cancelled_shutdown_stays_cancelled(tmp_path: Path) -> None:
    session, _ = fake_session(tmp_path)
    await session.start()
    task = asyncio.create_task(session.shutdown())
    await asyncio.sleep(0)  # the task now waits for the death watcher to stop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.shutdown(now=True)
    assert session.lifecycle is KernelLifecycle.SHUTDOWN
