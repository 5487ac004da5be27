"""KernelSession against real ipykernels in a real uv env (one env for the whole run)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from runtimed.daemon.envs.uv_builder import UvEnvBuilder
from runtimed.daemon.kernels import (
    ExecutionAbortedError,
    KernelConfig,
    KernelDiedError,
    KernelLifecycle,
    KernelNotRunningError,
    KernelSession,
    KernelStartError,
    KernelState,
    OutputStore,
    UnsupportedLanguageError,
)
from runtimed.daemon.kernels.kernelspec import LAUNCHER_SCRIPT, check_language
from runtimed.daemon.kernels.workspace import create_workspace

ROOT = Path(__file__).resolve().parent.parent


# -- shared env and helpers (test_outputs.py imports these) --------------------------------


@pytest.fixture(scope="session")
def kernel_env_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prewarmed-style uv env (ipykernel, bytecode compiled) for every kernel test."""
    prefix = tmp_path_factory.getbasetemp() / "kernel-env"
    marker = prefix / ".runtimed-test-ready"
    if not marker.exists():
        asyncio.run(UvEnvBuilder().build(prefix, "kernel-tests", 600))
        marker.write_text("ok")
    return prefix


def config_for(tmp_path: Path, env: Path | str, **options: Any) -> KernelConfig:
    python = str(env) if str(env).endswith("python") else str(Path(env) / "bin" / "python")
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    return KernelConfig(
        python_path=python,
        cwd=cwd,
        runtime_dir=tmp_path / "rt",
        ipython_dir=tmp_path / "ipython",
        **options,
    )


@contextlib.asynccontextmanager
async def make_session(tmp_path: Path, env: Path, **options: Any) -> AsyncIterator[KernelSession]:
    """A started KernelSession that is always shut down afterwards."""
    session = KernelSession(config_for(tmp_path, env, **options))
    try:
        await session.start()
        yield session
    finally:
        await session.shutdown(now=True)


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def run(session: KernelSession, code: str, cell: str = "c") -> tuple[Any, list[Any]]:
    store = OutputStore()
    reply = await session.execute(code, lambda m: store.apply(cell, m))
    return reply, store.outputs(cell)


# -- basics ---------------------------------------------------------------------------------


@pytest.mark.daemon
async def test_execute_result_streams_error(tmp_path: Path, kernel_env_path: Path) -> None:
    states: list[KernelState] = []
    async with make_session(tmp_path, kernel_env_path) as session:
        assert session.state.lifecycle is KernelLifecycle.RUNNING and session.is_alive
        assert session.kernel_info["language_info"]["name"] == "python"

        reply, outputs = await run(session, "1+1")
        assert reply.success and reply.execution_count == 1
        assert outputs == [
            {
                "output_type": "execute_result",
                "data": {"text/plain": "2"},
                "metadata": {},
                "execution_count": 1,
            }
        ]

        session.add_listener(states.append)
        reply, outputs = await run(
            session, "import sys\nprint('out')\nprint('err', file=sys.stderr)"
        )
        assert reply.success
        streams = {o["name"]: o["text"] for o in outputs}
        assert streams == {"stdout": "out\n", "stderr": "err\n"}
        assert [s.activity for s in states] == ["busy", "idle"]

        reply, outputs = await run(session, "def f():\n    raise ValueError('bad')\nf()")
        assert not reply.success and reply.ename == "ValueError" and reply.evalue == "bad"
        assert outputs[-1]["output_type"] == "error" and outputs[-1]["ename"] == "ValueError"

        reply, outputs = await run(session, "import os; os.getcwd(), os.environ['IPYTHONDIR']")
        cwd, ipython_dir = eval(outputs[0]["data"]["text/plain"])
        assert Path(cwd) == tmp_path / "cwd"
        assert Path(ipython_dir) == tmp_path / "ipython"
        assert (tmp_path / "ipython").is_dir()


@pytest.mark.daemon
async def test_private_files_and_cleanup(tmp_path: Path, kernel_env_path: Path) -> None:
    async with make_session(tmp_path, kernel_env_path) as session:
        workspace = session.workspace
        assert workspace is not None
        assert stat.S_IMODE(workspace.dir.stat().st_mode) & 0o777 == 0o700
        assert stat.S_IMODE(workspace.connection_file.stat().st_mode) == 0o600
        connection = workspace.connection_file.read_text()
        assert '"transport": "ipc"' in connection
        pid = session.pid
        assert pid is not None
    assert session.lifecycle is KernelLifecycle.SHUTDOWN
    assert not workspace.dir.exists()
    wait_until(lambda: process_gone(pid), 5, "kernel process to exit")


@pytest.mark.daemon
async def test_submit_iterates_messages_until_idle(tmp_path: Path, kernel_env_path: Path) -> None:
    async with make_session(tmp_path, kernel_env_path) as session:
        execution = session.submit("for i in range(3): print(i, flush=True)")
        kinds = [m["msg_type"] async for m in execution]
        assert kinds[0] == "status" and kinds[-1] == "status"
        assert "execute_input" in kinds and kinds.count("stream") >= 1
        assert (await execution.reply()).success


@pytest.mark.daemon
async def test_complete(tmp_path: Path, kernel_env_path: Path) -> None:
    async with make_session(tmp_path, kernel_env_path) as session:
        # jedi's first inference costs seconds; plain IPython completion keeps the test fast
        await session.execute("%config IPCompleter.use_jedi = False")
        await session.execute("alpha_value = 1; alpha_other = 2")
        result = await session.complete("x = alpha_", 10)
        assert {"alpha_value", "alpha_other"} <= set(result.matches)
        assert (result.cursor_start, result.cursor_end) == (4, 10)


# -- interrupt, death, restart ---------------------------------------------------------------


@pytest.mark.daemon
async def test_interrupt_sleep_within_2s(tmp_path: Path, kernel_env_path: Path) -> None:
    async with make_session(tmp_path, kernel_env_path) as session:
        store = OutputStore()
        execution = session.submit("import time\nprint('start', flush=True)\ntime.sleep(30)")
        task = asyncio.create_task(execution.wait(lambda m: store.apply("c", m)))
        while not store.outputs("c"):  # wait for the cell to be inside sleep()
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await session.interrupt()
        reply = await asyncio.wait_for(task, 2)
        assert time.monotonic() - started < 2
        assert reply.ename == "KeyboardInterrupt"
        assert store.outputs("c")[-1]["ename"] == "KeyboardInterrupt"
        assert (await session.execute("1")).success  # still usable


@pytest.mark.daemon
async def test_interrupt_signal_fallback(
    tmp_path: Path, kernel_env_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_reply(self: KernelSession) -> bool:
        return False  # as if the kernel ignored interrupt_request

    monkeypatch.setattr(KernelSession, "_interrupt_msg", no_reply)
    async with make_session(tmp_path, kernel_env_path) as session:
        task = asyncio.create_task(session.execute("import time; time.sleep(30)"))
        await asyncio.sleep(0)
        while session.state.activity != "busy":
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # busy is published just before the code runs
        await session.interrupt()
        reply = await asyncio.wait_for(task, 2)
        assert reply.ename == "KeyboardInterrupt"


@pytest.mark.daemon
async def test_death_mid_cell_then_restart(tmp_path: Path, kernel_env_path: Path) -> None:
    states: list[KernelState] = []
    async with make_session(tmp_path, kernel_env_path) as session:
        session.add_listener(states.append)
        await session.execute("x = 42")
        store = OutputStore()
        started = time.monotonic()
        with pytest.raises(KernelDiedError, match="kernel died") as info:
            await asyncio.wait_for(
                session.execute(
                    "import os, time\nprint('about to die', flush=True)\n"
                    "time.sleep(0.2)\nos._exit(1)",
                    lambda m: store.apply("c", m),
                ),
                10,
            )
        assert time.monotonic() - started < 3
        assert info.value.exit_code == 1
        assert store.outputs("c") == [
            {"output_type": "stream", "name": "stdout", "text": "about to die\n"}
        ]
        assert session.lifecycle is KernelLifecycle.DEAD and not session.is_alive
        assert states[-1].lifecycle is KernelLifecycle.DEAD
        assert states[-1].error is not None and "exit code 1" in states[-1].error
        with pytest.raises(KernelNotRunningError, match="restart"):
            session.submit("1")

        await session.restart()
        assert session.lifecycle is KernelLifecycle.RUNNING
        assert KernelLifecycle.RESTARTING in [s.lifecycle for s in states]
        reply = await session.execute("x")
        assert reply.ename == "NameError"  # fresh namespace
        assert (await session.execute("y = 1")).success


@pytest.mark.daemon
async def test_restart_running_kernel_aborts_pending(tmp_path: Path, kernel_env_path: Path) -> None:
    async with make_session(tmp_path, kernel_env_path) as session:
        await session.execute("x = 1")
        pending = asyncio.create_task(session.execute("import time; time.sleep(30)"))
        await asyncio.sleep(0.2)
        await asyncio.wait_for(session.restart(), 15)
        with pytest.raises(ExecutionAbortedError, match="restarted"):
            await pending
        assert (await session.execute("x")).ename == "NameError"


@pytest.mark.daemon
async def test_shutdown_aborts_running_execution(tmp_path: Path, kernel_env_path: Path) -> None:
    session = KernelSession(config_for(tmp_path, kernel_env_path))
    await session.start()
    pid = session.pid
    assert pid is not None
    pending = asyncio.create_task(session.execute("import time; time.sleep(30)"))
    await asyncio.sleep(0.2)
    await asyncio.wait_for(session.shutdown(), 15)
    with pytest.raises(ExecutionAbortedError, match="shut down"):
        await pending
    wait_until(lambda: process_gone(pid), 5, "kernel process to exit")
    await session.shutdown()  # idempotent


# -- start failures --------------------------------------------------------------------------


def fake_python(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-env" / "bin" / "python"
    path.parent.mkdir(parents=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.mark.daemon
async def test_failed_start_reports_stderr(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "echo 'boom: ipykernel is not installed' >&2\nexit 1")
    session = KernelSession(config_for(tmp_path, python))
    started = time.monotonic()
    with pytest.raises(KernelStartError, match="boom: ipykernel is not installed") as info:
        await session.start()
    assert time.monotonic() - started < 5
    assert "exit code 1" in info.value.message
    assert session.lifecycle is KernelLifecycle.DEAD
    assert session.state.error is not None and "boom" in session.state.error
    assert not list((tmp_path / "rt").iterdir())  # workspace removed
    await session.shutdown()


@pytest.mark.daemon
async def test_start_timeout_kills_silent_kernel(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "echo 'hanging' >&2\nexec sleep 60")
    session = KernelSession(config_for(tmp_path, python, startup_timeout=1.0))
    with pytest.raises(KernelStartError, match="no reply from the kernel in 1 s"):
        await session.start()
    assert session.lifecycle is KernelLifecycle.DEAD


@pytest.mark.daemon
async def test_missing_python_is_a_start_error(tmp_path: Path) -> None:
    session = KernelSession(config_for(tmp_path, tmp_path / "nope" / "bin" / "python"))
    with pytest.raises(KernelStartError, match="could not run"):
        await session.start()


async def test_unknown_language_is_refused_before_launch(tmp_path: Path) -> None:
    session = KernelSession(config_for(tmp_path, tmp_path / "unused", language="R"))
    with pytest.raises(UnsupportedLanguageError, match="'R'"):
        await session.start()
    assert session.lifecycle is KernelLifecycle.NOT_STARTED
    assert check_language("Python3") == "python" and check_language(None) == "python"


# -- no orphans ------------------------------------------------------------------------------

PARENT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from runtimed.daemon.kernels import KernelConfig, KernelSession

    async def main():
        base = Path(sys.argv[2])
        config = KernelConfig(python_path=sys.argv[1], cwd=base, runtime_dir=base / "rt",
                              ipython_dir=base / "ipython")
        session = KernelSession(config)
        await session.start()
        assert (await session.execute("1")).success
        print(session.pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids to SIGKILL after the test if they are still around."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.daemon  # a real kernel (under a parent process the test kills)
@pytest.mark.parametrize("guard_mode", ["pdeathsig", "poll"])
async def test_kernel_dies_with_sigkilled_parent(
    tmp_path: Path, kernel_env_path: Path, guard_mode: str, reap: list[int]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if guard_mode == "poll":
        env["RUNTIMED_GUARD_MODE"] = "poll"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(kernel_env_path / "bin" / "python"), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    reap.append(parent.pid)
    line = await asyncio.wait_for(asyncio.to_thread(parent.stdout.readline), 60)  # type: ignore[union-attr]
    assert line.strip().isdigit(), parent.stderr.read() if parent.stderr else ""
    kernel_pid = int(line)
    tree = [kernel_pid, *(p.pid for p in psutil.Process(kernel_pid).children(recursive=True))]
    reap.extend(tree)
    assert any(str(LAUNCHER_SCRIPT) in psutil.Process(p).cmdline() for p in tree)

    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    wait_until(lambda: all(process_gone(p) for p in tree), 5, "kernel to die with its parent")


@pytest.mark.daemon
async def test_late_thread_output_goes_to_on_unrouted(
    tmp_path: Path, kernel_env_path: Path
) -> None:
    late: list[dict[str, Any]] = []
    session = KernelSession(config_for(tmp_path, kernel_env_path), on_unrouted=late.append)
    await session.start()
    try:
        code = "import threading\nthreading.Timer(0.2, lambda: print('late', flush=True)).start()"
        execution = session.submit(code)
        assert (await execution.wait()).success

        def ours() -> list[dict[str, Any]]:  # the kernel may also emit startup warnings
            return [m for m in late if (m.get("content") or {}).get("text") == "late\n"]

        deadline = time.monotonic() + 5
        while not ours() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert ours() and ours()[0]["msg_type"] == "stream"
        assert ours()[0]["parent_header"]["msg_id"] == execution.msg_id  # caller can map it
    finally:
        await session.shutdown(now=True)


def test_workspace_falls_back_to_short_path_for_ipc(tmp_path: Path) -> None:
    long_dir = tmp_path / ("d" * 60) / ("e" * 60)
    workspace = create_workspace(long_dir)
    try:
        assert len(workspace.ipc_base) < 90
        assert stat.S_IMODE(workspace.dir.stat().st_mode) == 0o700
    finally:
        workspace.remove()
    assert not workspace.dir.exists()


def test_kernel_messages_are_checked_against_the_key() -> None:
    from jupyter_client.session import Session as JupyterSession

    from runtimed.daemon.kernels.channels import decode_message

    signer = JupyterSession(key=b"secret")
    parts = signer.serialize(signer.msg("status", {"execution_state": "idle"}))
    msg = decode_message(signer, parts)
    assert msg["msg_type"] == "status" and msg["content"] == {"execution_state": "idle"}
    forged = [*parts[:-1], b'{"execution_state": "busy"}']
    with pytest.raises(ValueError, match="signature"):
        decode_message(signer, forged)
    with pytest.raises(ValueError):
        decode_message(JupyterSession(key=b"other"), parts)


@pytest.mark.daemon
async def test_kernel_starts_without_the_debugger_and_behaves_like_ipykernel_launcher(
    tmp_path: Path, kernel_env_path: Path
) -> None:
    (tmp_path / "cwd").mkdir(exist_ok=True)
    (tmp_path / "cwd" / "notebook_helper.py").write_text("VALUE = 7\n")
    async with make_session(tmp_path, kernel_env_path) as session:
        _, outputs = await run(
            session,
            "import os, sys\n"
            "print('debugpy' in sys.modules, sys.path[0] == os.getcwd())\n"
            "import notebook_helper, debugpy\n"
            "print(notebook_helper.VALUE, debugpy.__name__)",
        )
        assert outputs[0]["text"] == "False True\n7 debugpy\n"
