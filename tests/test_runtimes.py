"""Runtimes (`runt ps/start/kill/interrupt/restart`) and history through a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

import runtimed
from helpers import DaemonProcess, wait_until
from runtimed.errors import RuntimedError

pytestmark = pytest.mark.daemon

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def rt_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("runtimes") / "cache", ["--uv-pool-size", "2"])
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def runt(d: DaemonProcess, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runt"), *args, "--socket", str(d.socket_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=cwd,
    )  # fmt: skip


def test_start_run_history_export_kill(rt_daemon: DaemonProcess, tmp_path: Path) -> None:
    started = runt(rt_daemon, "start", "python3", "--cwd", str(tmp_path))
    assert started.returncode == 0, started.stderr
    runtime_id = started.stdout.strip()
    assert len(runtime_id) == 8
    ps = json.loads(runt(rt_daemon, "ps", "--json").stdout)
    (info,) = [r for r in ps if r["runtime_id"] == runtime_id]
    assert info["status"] == "idle" and info["kernel_name"] == "python3"
    assert info["language"] == "python" and info["transport"] == "ipc"
    assert os.path.exists(info["connection_file"]) and info["pid"]
    assert info["notebook_id"] == f"runtime-{runtime_id}"

    # The runtime is a room: any Session joins it and runs cells document-first.
    with runtimed.Session(info["notebook_id"], socket_path=rt_daemon.socket_path) as s:
        assert s.run("import os; os.getcwd()").display_data[0].data["text/plain"] == repr(
            str(tmp_path)
        )
        assert s.run("print('hi')").stdout == "hi\n"
        assert not s.run("1/0").success

    with rt_daemon.client() as client:
        entries = client.executions(runtime_id=runtime_id)
        assert [e.source for e in entries] == ["1/0", "print('hi')", "import os; os.getcwd()"]
        assert entries[0].status == "error" and entries[1].success
        full = client.get_execution(entries[1].id)
        assert full.outputs == [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
        assert full.language_info and full.language_info["name"] == "python"
        with pytest.raises(RuntimedError, match="no execution"):
            client.get_execution("01NOSUCHEXECUTION000000000")

    shown = runt(rt_daemon, "history", "show", entries[1].id)
    assert shown.returncode == 0 and "print('hi')" in shown.stdout and "hi" in shown.stdout
    listed = runt(rt_daemon, "history", "--runtime", runtime_id, "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [e.id for e in entries]

    killed = runt(rt_daemon, "kill", runtime_id)
    assert killed.returncode == 0 and runtime_id in killed.stdout
    ps = json.loads(runt(rt_daemon, "ps", "--json").stdout)
    assert runtime_id not in [r["runtime_id"] for r in ps]
    wait_until(lambda: not _alive(info["pid"]), timeout=10)

    # Export works after the runtime is gone: it comes from the history.
    out = tmp_path / "session.ipynb"
    exported = runt(rt_daemon, "export", runtime_id, "--notebook", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    assert [c.source for c in nb.cells] == ["import os; os.getcwd()", "print('hi')", "1/0"]
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]
    assert nb.cells[2].outputs[0].output_type == "error"
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.language_info.name == "python"


def _status(client: runtimed.DaemonClient, runtime_id: str) -> str:
    return next(r.status for r in client.list_runtimes() if r.runtime_id == runtime_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_notebook_kernels_are_runtimes_and_can_be_controlled(rt_daemon: DaemonProcess) -> None:
    with runtimed.Session("rt-notebook", socket_path=rt_daemon.socket_path) as s:
        s.run("x = 1")
        with rt_daemon.client() as client:
            (info,) = [r for r in client.list_runtimes() if r.notebook_id == "rt-notebook"]
            assert info.status == "idle" and info.env_source == "uv:prewarmed"
            cell = s.create_cell("import time; time.sleep(30)")
            execution = s.queue_cell(cell)
            wait_until(lambda: _status(client, info.runtime_id) == "busy")
            client.interrupt_runtime(info.runtime_id[:4])  # a unique prefix is enough
            assert s.wait_for_execution(execution, timeout=20).error.ename == "KeyboardInterrupt"  # type: ignore[union-attr]
            restarted = client.restart_runtime(info.runtime_id)
            assert restarted.runtime_id == info.runtime_id and restarted.pid != info.pid
            assert not s.run("x").success  # a new kernel: x is gone
            entries = client.executions(notebook="rt-notebook")
            assert entries[0].source == "x" and entries[0].runtime_id == info.runtime_id


def test_wrong_input_gives_one_line_errors(rt_daemon: DaemonProcess, tmp_path: Path) -> None:
    for args, expected in (
        (("kill", "nosuch"), "no runtime 'nosuch'"),
        (("interrupt", "nosuch"), "see `runt ps`"),
        (("start", "python3", "--cwd", str(tmp_path / "missing")), "no such directory"),
        (
            ("start", "nosuchkernel"),
            "no kernel named 'nosuchkernel'; installed kernelspecs: python3",
        ),
        (("history", "show", "nosuch"), "no execution 'nosuch'"),
        (("history", "--limit", "0"), "--limit must be at least 1"),
        (("export", "nosuch"), "--notebook"),
        (("export", "nosuch", "--notebook"), "no executions of runtime 'nosuch'"),
    ):
        r = runt(rt_daemon, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], args


def test_history_survives_kill_9_of_the_daemon(rt_daemon: DaemonProcess) -> None:
    """Last in this module: the daemon is killed and started again on the same cache dir."""
    with runtimed.Session("survivor", socket_path=rt_daemon.socket_path) as s:
        s.run("40 + 2")
    with rt_daemon.client() as client:
        assert client.executions(notebook="survivor")  # a query commits what is queued
    rt_daemon.kill9()
    rt_daemon.start()
    with rt_daemon.client() as client:
        (entry,) = client.executions(notebook="survivor")
        assert entry.source == "40 + 2" and entry.success


def test_ps_all_lists_foreign_kernels_alive_and_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_client.manager import KernelManager

    runtime_dir = tmp_path / "jupyter-runtime"
    runtime_dir.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime_dir))
    km = KernelManager(connection_file=str(runtime_dir / "kernel-a1b2c3d4-0000.json"))
    km.start_kernel(env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")})
    stale = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5,
             "ip": "127.0.0.1", "key": "k", "transport": "tcp", "kernel_name": "python3",
             "signature_scheme": "hmac-sha256"}  # fmt: skip
    (runtime_dir / "kernel-deadbeef-0000.json").write_text(json.dumps(stale))
    d = DaemonProcess(tmp_path / "cache", ["--uv-pool-size", "0"]).start()
    try:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        client.stop_channels()
        listed = runt(d, "ps", "--all", "--json")
        assert listed.returncode == 0, listed.stderr
        found = {r["runtime_id"]: r for r in json.loads(listed.stdout)}
        assert found["a1b2c3d4"]["status"] == "idle" and found["a1b2c3d4"]["language"] == "python"
        assert found["deadbeef"]["status"] == "dead" and not found["deadbeef"]["owned"]
        assert json.loads(runt(d, "ps", "--json").stdout) == []  # without --all: ours only
        table = runt(d, "ps", "--all")
        assert table.returncode == 0 and "a1b2c3d4" in table.stdout and "dead" in table.stdout
    finally:
        d.stop()
        km.shutdown_kernel(now=True)
