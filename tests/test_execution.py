"""Kernels and document-first execution through the daemon, with real kernels."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

import runtimed
from helpers import DaemonProcess, wait_until
from runtimed.daemon.kernels.kernelspec import LAUNCHER_SCRIPT

pytestmark = pytest.mark.daemon


@pytest.fixture(scope="module")
def exec_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module: a uv pool of 2 and a short room keep-alive."""
    d = DaemonProcess(tmp_path_factory.mktemp("exec") / "cache", ["--uv-pool-size", "2"])
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def session(d: DaemonProcess, notebook_id: str) -> runtimed.Session:
    return runtimed.Session(notebook_id, socket_path=d.socket_path).connect()


def test_run_gives_result_and_every_peer_sees_outputs(exec_daemon: DaemonProcess):
    a, b = session(exec_daemon, "shared"), session(exec_daemon, "shared")
    r = a.run("x = 40\nx + 2")
    assert r.success and r.execution_count == 1
    assert r.display_data[0].data["text/plain"] == "42"
    assert a.kernel_started and a.env_source == "uv:prewarmed"
    # Same kernel, same namespace, from the other client; A's document shows B's outputs.
    cid = b.create_cell("print(x * 2)")
    rb = b.execute_cell(cid)
    assert rb.stdout == "80\n"
    wait_until(
        lambda: a.get_outputs(cid) == [{"output_type": "stream", "name": "stdout", "text": "80\n"}],
        5,
    )
    assert a.get_cell(cid).execution_count == 2
    for s in (a, b):
        s.close()


def test_run_code_appends_and_queues_the_cell_in_the_daemon(exec_daemon: DaemonProcess):
    """run() asks the daemon to append the cell and queue it (run_code): every peer gets
    the cell with its source and outputs. Against a daemon without run_code (it answers
    unknown_request) the session appends the cell itself."""
    a, b = session(exec_daemon, "run-code"), session(exec_daemon, "run-code")
    queued = a.request("run_code", code="6 * 7")
    r = a.wait_for_execution(queued["execution_id"])
    assert r.cell_id == queued["cell_id"] and r.display_data[0].data["text/plain"] == "42"
    # The cell, then its outputs, reach the other peer (two updates: wait for both).
    wait_until(lambda: [(c.source, len(c.outputs)) for c in b.get_cells()] == [("6 * 7", 1)], 5)
    assert b.get_cell(r.cell_id).outputs[0].data["text/plain"] == "42"
    a._session._daemon_runs_code = False  # as after an older daemon's unknown_request
    r2 = a.run("6 * 8")
    assert r2.display_data[0].data["text/plain"] == "48"
    assert [c.source for c in a.get_cells()] == ["6 * 7", "6 * 8"]
    for s in (a, b):
        s.close()


def test_streams_errors_displays_and_clear_output(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "outputs")
    r = s.run(
        "import sys\nfor i in range(5): print(f'{i*20}%', end='\\r')\nprint('100%')\n"
        "print('\\x1b[31mred\\x1b[0m', file=sys.stderr)\nprint('a\\bb')"
    )
    assert r.stdout == "100%\nb\n"
    assert r.stderr == "\x1b[31mred\x1b[0m\n"
    assert {o.name for o in r.outputs} == {"stdout", "stderr"}  # never mixed in one output
    r = s.run("raise ValueError('nope')")
    assert not r.success and r.error is not None
    assert (r.error.ename, r.error.evalue) == ("ValueError", "nope") and r.error.traceback
    r = s.run(
        "from IPython.display import display, clear_output\n"
        "h = display('first', display_id=True)\nprint('x')\nclear_output(wait=True)\n"
        "print('after')"
    )
    assert [o.text for o in r.outputs] == ["after\n"]
    first = s.run("h = display('v1', display_id='shared-id')")
    s.run("h.update('v2')")
    wait_until(lambda: s.get_cell(first.cell_id).outputs[0].data["text/plain"] == "'v2'", 5)
    s.clear_outputs(first.cell_id)
    wait_until(lambda: s.get_cell(first.cell_id).outputs == [], 5)
    s.close()


def test_queue_is_fifo_and_requeue_returns_same_id(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "fifo")
    s.run("order = []")
    slow = s.create_cell("import time; time.sleep(0.5); order.append('slow')")
    fast = s.create_cell("order.append('fast')")
    e1 = s.queue_cell(slow)
    e2 = s.queue_cell(fast)
    assert s.queue_cell(fast) == e2  # still queued: same execution
    assert s.wait_for_execution(e1).success and s.wait_for_execution(e2).success
    assert s.run("order").display_data[0].data["text/plain"] == "['slow', 'fast']"
    s.close()


def test_run_all_stops_at_first_error(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "runall")
    s.create_cell("a = 1")
    s.create_cell("# notes", cell_type="markdown")
    s.create_cell("raise RuntimeError('stop here')")
    s.create_cell("b = 2")
    results = s.run_all()
    assert [r.status for r in results] == ["done", "error", "cancelled"]
    assert results[1].error is not None and results[1].error.ename == "RuntimeError"
    s.close()


def test_interrupt_stops_sleep_within_two_seconds_and_clears_queue(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "interrupt")
    s.start_kernel()
    running = s.queue_cell(s.create_cell("import time; time.sleep(30)"))
    queued = s.queue_cell(s.create_cell("print('never')"))
    wait_until(lambda: s.request("get_execution", execution_id=running)["status"] == "running", 10)
    started = time.monotonic()
    assert s.interrupt() == 1
    r = s.wait_for_execution(running, timeout=5)
    assert time.monotonic() - started < 2
    assert r.error is not None and r.error.ename == "KeyboardInterrupt"
    assert s.wait_for_execution(queued).status == "cancelled"
    assert s.run("1").success  # the kernel survives
    s.close()


# ipykernel sends no execute_reply when SIGINT lands while it still announces the cell
# (inside its _publish_execute_input): it goes idle without a reply. Widening that window
# makes the race certain.
SLOW_ANNOUNCE = """
import time
k = get_ipython().kernel
announce = k._publish_execute_input
def slow_announce(*args, **kwargs):
    k._publish_execute_input = announce
    announce(*args, **kwargs)
    time.sleep(1)
k._publish_execute_input = slow_announce
"""


def test_interrupt_while_the_kernel_announces_the_cell_still_ends_it(
    exec_daemon: DaemonProcess,
):
    s = session(exec_daemon, "interrupt-early")
    assert s.run(SLOW_ANNOUNCE).success
    running = s.queue_cell(s.create_cell("time.sleep(30)"))
    wait_until(lambda: s.request("get_execution", execution_id=running)["status"] == "running", 10)
    s.interrupt()
    r = s.wait_for_execution(running, timeout=5)
    assert r.error is not None and r.error.ename == "KeyboardInterrupt"
    assert s.run("1 + 1").display_data[0].data["text/plain"] == "2"  # nothing left hanging
    s.close()


def test_a_cell_the_kernel_never_answers_ends_with_an_error(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "no-reply")
    no_reply = SLOW_ANNOUNCE.replace("time.sleep(1)", "raise KeyboardInterrupt")
    assert s.run(no_reply).success
    r = s.run("print('announced, never run')", timeout=10)
    assert not r.success and r.error is not None and r.error.ename == "KernelError"
    assert s.run("1 + 1").display_data[0].data["text/plain"] == "2"
    s.close()


def test_kernel_death_mid_cell_is_reported_and_restart_recovers(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "death")
    s.run("state = 'alive'")
    dying = s.queue_cell(s.create_cell("import os, time; time.sleep(0.2); os._exit(1)"))
    behind = s.queue_cell(s.create_cell("print('behind')"))
    r = s.wait_for_execution(dying, timeout=30)
    assert not r.success and r.error is not None and "kernel died" in r.error.evalue
    assert s.wait_for_execution(behind).status == "cancelled"
    wait_until(lambda: s.kernel.get("lifecycle") == "dead", 5)
    assert not s.run("1").success  # dead until restarted: a clear error, no hang
    s.restart_kernel()
    wait_until(lambda: s.kernel_started, 10)
    r = s.run("'state' in dir()")
    assert r.display_data[0].data["text/plain"] == "False"  # fresh namespace
    s.close()


def test_inline_env_source_and_unknown_language(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "inline")
    s.set_metadata("runt", {"uv": {"dependencies": ["six"]}})
    s.trust()  # the notebook's own dependencies install only once approved
    s.start_kernel(env_source="auto")
    assert s.env_source == "uv:inline"
    assert s.run("import six; six.PY3").display_data[0].data["text/plain"] == "True"
    s.close()
    r = session(exec_daemon, "julia")
    r.set_metadata("kernelspec", {"name": "julia", "language": "julia", "display_name": "J"})
    with pytest.raises(runtimed.RuntimedError, match=r"needs a .julia. kernel"):
        r.start_kernel()
    r.close()


def test_second_launch_reports_running_kernel_and_cwd_is_notebook_dir(
    exec_daemon: DaemonProcess, tmp_path: Path
):
    path = tmp_path / "work" / "nb.ipynb"
    path.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), path)
    s = runtimed.Session.open(path, socket_path=exec_daemon.socket_path).connect()
    first = s.start_kernel()
    assert s.start_kernel()["pid"] == first["pid"]
    assert s.run("import os; os.getcwd()").display_data[0].data["text/plain"] == repr(
        str(path.parent)
    )
    assert s.complete("import o", 8)["matches"]
    s.close()


def test_answers_and_events_never_get_ahead_of_the_runtime_document(
    exec_daemon: DaemonProcess,
):
    from runtimed.documents.runtime import RuntimeDoc

    a, b = session(exec_daemon, "ordering"), session(exec_daemon, "ordering")
    seen_by_b: list[str | None] = []

    def on_event(event: dict) -> None:  # runs as the event arrives, before anything later
        if event.get("event") == "execution_done":
            record = RuntimeDoc(b.runtime_doc).execution(event["execution_id"])
            seen_by_b.append(record and record["status"])

    b.add_listener(on_event)
    r = a.run("21 * 2")
    record = RuntimeDoc(a.runtime_doc).execution(r.execution_id)
    assert record is not None and record["status"] == "done" and record["execution_count"]
    assert a.get_cell(r.cell_id).outputs[0].data["text/plain"] == "42"
    wait_until(lambda: seen_by_b, 5)
    assert seen_by_b == ["done"]
    # State with no answer to ride on (a cell that keeps running) still reaches peers.
    eid = a.queue_cell(a.create_cell("import time; time.sleep(30)"))
    wait_until(
        lambda: (RuntimeDoc(b.runtime_doc).execution(eid) or {}).get("status") == "running", 5
    )
    wait_until(lambda: RuntimeDoc(b.runtime_doc).queue()["executing"] == eid, 5)
    a.interrupt()
    assert a.wait_for_execution(eid, timeout=10).status == "error"
    for s in (a, b):
        s.close()


def test_executing_unknown_cell_is_not_found(exec_daemon: DaemonProcess):
    s = session(exec_daemon, "unknown")
    with pytest.raises(runtimed.RuntimedError, match="not found"):
        s.execute_cell("cell-does-not-exist")
    s.close()


async def test_async_session_runs_code(exec_daemon: DaemonProcess):
    async with runtimed.AsyncSession("async-exec", socket_path=exec_daemon.socket_path) as s:
        r = await s.run("print('hi from async')")
        assert r.stdout == "hi from async\n"
        assert s.kernel_started


def test_twenty_rooms_with_a_kernel_each(exec_daemon: DaemonProcess):
    sessions = [session(exec_daemon, f"many-{i}") for i in range(20)]
    for i, s in enumerate(sessions):  # a shared inline env: 20 kernels, one env build
        s.set_metadata("runt", {"uv": {"dependencies": ["six"]}})
        s.trust()  # approves six for every notebook (the first call) and reports
        s.queue_cell(s.create_cell(f"n = {i}"))
    for i, s in enumerate(sessions):
        assert s.run("n * 2", timeout=120).display_data[0].data["text/plain"] == str(i * 2)
    with exec_daemon.client() as c:
        rooms = {r.notebook_id: r for r in c.list_rooms()}
    assert all(rooms[f"many-{i}"].has_kernel for i in range(20))
    pids = {s.kernel["lifecycle"] for s in sessions}
    assert pids == {"running"}
    for s in sessions:
        s.shutdown_kernel()
        s.close()


def _kernel_pids(cache_dir: Path) -> list[int]:
    """Kernel processes whose interpreter lives under this daemon's cache dir."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        launched = str(LAUNCHER_SCRIPT).encode() in argv
        guard = any(a.endswith(b"guard.py") for a in argv)  # the kernel's parent
        if launched and not guard and argv[0].startswith(str(cache_dir).encode()):
            pids.append(int(proc.name))
    return pids


def test_sigkill_of_daemon_leaves_no_kernel(daemon_factory: Callable[..., DaemonProcess]):
    d = daemon_factory("--uv-pool-size", "2")
    d.wait_pool("uv", 2)
    sessions = [session(d, f"orphan-{i}") for i in range(2)]
    for s in sessions:
        assert s.run("1").success
    assert len(_kernel_pids(d.cache_dir)) == 2
    d.kill9()
    wait_until(lambda: not _kernel_pids(d.cache_dir), 10, what="kernels to die with the daemon")
    for s in sessions:
        s.close()


def test_evicted_room_shuts_kernel_and_deletes_env(daemon_factory: Callable[..., DaemonProcess]):
    d = daemon_factory("--uv-pool-size", "1")
    d.wait_pool("uv", 1)
    from runtimed.client.settings_client import SettingsClient

    with SettingsClient(d.socket_path) as settings:
        settings.set("keep_alive_secs", 0.5)
    s = session(d, "evict-kernel")
    s.run("1")
    env_path = s.request("kernel_info")["python_path"].rsplit("/bin/", 1)[0]
    assert os.path.isdir(env_path) and _kernel_pids(d.cache_dir)
    s.close()
    wait_until(
        lambda: not _kernel_pids(d.cache_dir) and not os.path.exists(env_path),
        20,
        what="kernel stopped and env deleted after eviction",
    )


def test_kernel_that_fails_to_start_reports_stderr(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
):
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".git").mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "0"\ndependencies = ["runtimed-no-such-dep-xyz"]\n'
    )
    nb = project / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), nb)
    d = daemon_factory("--uv-pool-size", "0")
    s = runtimed.Session.open(nb, socket_path=d.socket_path).connect()
    with pytest.raises(runtimed.RuntimedError, match="runtimed-no-such-dep-xyz"):
        s.start_kernel(env_source="uv:pyproject")
    assert s.kernel["lifecycle"] == "dead" and "runtimed-no-such-dep-xyz" in s.kernel["error"]
    s.close()
