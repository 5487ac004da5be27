"""The first ten minutes (issue 16): what a new user hit following the README, each a
test against a real daemon, real kernels and the real CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

import runtimed
from helpers import DaemonProcess, wait_until, write_notebook
from runtimed.client.results import Output
from runtimed.client.settings_client import SettingsClient

BIN = Path(sys.executable).parent


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("newuser") / "cache", ["--uv-pool-size", "2"])
    daemon.start()
    daemon.wait_pool("uv", 1)
    yield daemon
    daemon.stop()


# First: later tests start kernels, which take envs; this one would wait for the pool
# to build them again.
@pytest.mark.daemon
def test_lowering_the_pool_size_trims_ready_envs(d: DaemonProcess) -> None:
    d.wait_pool("uv", 2, settled=True)
    envs = d.cache_dir / "envs"
    with SettingsClient(d.socket_path) as settings:
        settings.set("uv.pool_size", 1)
        try:

            def trimmed() -> bool:
                with d.client() as c:
                    pool = c.status().pools["uv"]
                return pool.available == 1 and len(list(envs.glob("runtimed-uv-*"))) <= 2

            wait_until(trimmed, 30, what="the pool to shrink to 1")
        finally:
            settings.set("uv.pool_size", 2)


# 1. a session connects on first use; a closed one says so
@pytest.mark.daemon
def test_session_open_connects_on_first_use(d: DaemonProcess, tmp_path: Path) -> None:
    path = tmp_path / "first.ipynb"
    write_notebook(path, "a = 1", "b = 2")
    one = runtimed.Session.open(path, socket_path=d.socket_path)
    two = runtimed.Session.open(path, socket_path=d.socket_path)
    assert [c.source for c in one.get_cells()] == ["a = 1", "b = 2"]
    cid = two.create_cell("c = 3")
    wait_until(lambda: cid in [c.id for c in one.get_cells()], 10, what="the other's cell")
    one.close()
    with pytest.raises(runtimed.RuntimedError) as info:
        one.get_cells()
    assert info.value.code == "closed" and "closed" in info.value.message
    two.close()


# 2. one output type for cells and results
@pytest.mark.daemon
def test_cell_outputs_and_result_outputs_are_one_type(d: DaemonProcess) -> None:
    with runtimed.Session(socket_path=d.socket_path) as s:
        result = s.run("print('hi')")
        cell = s.get_cell(result.cell_id)
        assert all(isinstance(o, Output) for o in [*cell.outputs, *result.outputs])
        assert cell.outputs == result.outputs and cell.outputs[0].text == "hi\n"
        assert isinstance(s.get_cells()[0].outputs[0], Output)


# 3. saved notebooks say which kernel they need; 4. run_all(stop_on_error=False)
@pytest.mark.daemon
def test_saved_notebook_has_kernelspec_and_run_all_can_go_on(
    d: DaemonProcess, tmp_path: Path
) -> None:
    with runtimed.Session(socket_path=d.socket_path) as s:
        for source in ("x = 1", "raise ValueError('boom')", "y = x + 1", "y"):
            s.create_cell(source)
        stopped = s.run_all()
        assert [r.status for r in stopped] == ["done", "error", "cancelled", "cancelled"]
        every = s.run_all(stop_on_error=False)
        assert [r.status for r in every] == ["done", "error", "done", "done"]
        assert every[3].display_data[0].data["text/plain"] == "2"
        saved = nbformat.read(s.save(tmp_path / "saved.ipynb"), as_version=4)
    nbformat.validate(saved)
    assert saved.metadata.kernelspec.name == "python3"
    assert saved.metadata.kernelspec.language == "python"
    assert saved.metadata.language_info.name == "python"
    assert saved.metadata.language_info.version.startswith(f"{sys.version_info.major}.")


# 5. a lingering room follows its file on disk, and never overwrites a newer file
@pytest.mark.daemon
def test_lingering_room_reloads_a_file_changed_on_disk(d: DaemonProcess, tmp_path: Path) -> None:
    path = tmp_path / "disk.ipynb"
    write_notebook(path, "old = 1")
    with runtimed.Session.open(path, socket_path=d.socket_path) as s:
        assert [c.source for c in s.get_cells()] == ["old = 1"]
    time.sleep(0.05)  # a different mtime is not what is checked, but keep it realistic
    write_notebook(path, "new = 1", "new = 2")  # another editor saves the file
    with runtimed.Session.open(path, socket_path=d.socket_path) as s:
        assert [c.source for c in s.get_cells()] == ["new = 1", "new = 2"]


@pytest.mark.daemon
def test_unsaved_room_refuses_to_overwrite_a_newer_file(d: DaemonProcess, tmp_path: Path) -> None:
    path = tmp_path / "conflict.ipynb"
    write_notebook(path, "mine = 1")
    with runtimed.Session.open(path, socket_path=d.socket_path) as s:
        s.create_cell("unsaved = 1")
    write_notebook(path, "theirs = 1")
    with runtimed.Session.open(path, socket_path=d.socket_path) as s:
        assert [c.source for c in s.get_cells()] == ["mine = 1", "unsaved = 1"]  # kept
        with pytest.raises(runtimed.RuntimedError) as info:
            s.save()
        assert info.value.code == "file_changed" and "force=True" in info.value.message
        assert [c.source for c in nbformat.read(path, as_version=4).cells] == ["theirs = 1"]
        s.save(force=True)
    assert [c.source for c in nbformat.read(path, as_version=4).cells] == [
        "mine = 1",
        "unsaved = 1",
    ]


# 6. versions
def test_versions() -> None:
    for tool in ("runt", "runtimed"):
        r = cli(tool, "--version")
        assert r.returncode == 0 and r.stdout.strip() == f"{tool} {runtimed.__version__}"


# 7. negative values reach the validator
@pytest.mark.daemon
def test_config_set_negative_value_gets_the_validators_message(d: DaemonProcess) -> None:
    r = cli("runt", "config", "set", "uv.pool_size", "-3", "--socket", str(d.socket_path))
    assert r.returncode == 1
    assert r.stderr.startswith("error:") and "from 0 to 64" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# 11. rooms at 80 columns: ids and paths are never cut
@pytest.mark.daemon
def test_rooms_table_keeps_long_ids_apart(d: DaemonProcess) -> None:
    prefix = "a-long-notebook-name-shared-by-two-rooms-" * 2
    ids = [prefix + "first", prefix + "second"]
    sessions = [runtimed.Session(i, socket_path=d.socket_path).connect() for i in ids]
    try:
        r = cli("runt", "rooms", "--socket", str(d.socket_path), columns=80)
        assert r.returncode == 0, r.stderr
        assert max(len(line) for line in r.stdout.splitlines()) <= 80
        shown = table_column(r.stdout, 0, row_starts_at=2)
        assert set(ids) <= set(shown), shown
    finally:
        for s in sessions:
            s.close()


def table_column(text: str, column: int, row_starts_at: int) -> list[str]:
    """The cells of one column of a rich table, wrapped lines joined; a row starts on a
    line whose ``row_starts_at`` column is not empty."""
    rows: list[str] = []
    for line in text.splitlines():
        if "│" not in line and "┃" not in line:
            continue
        cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
        if len(cells) <= max(column, row_starts_at) or cells[0] == "notebook":
            continue
        if cells[row_starts_at]:
            rows.append(cells[column])
        elif rows:
            rows[-1] += cells[column]
    return rows


# 12. status --json without a daemon
def test_status_json_without_a_daemon(tmp_path: Path) -> None:
    r = cli("runtimed", "status", "--json", "--socket", str(tmp_path / "none.sock"))
    assert r.returncode == 2
    assert json.loads(r.stdout) == {
        "running": False,
        "error": f"runtimed is not running (no daemon at {tmp_path / 'none.sock'}); "
        "start it with `runtimed run`",
        "code": "not_running",
    }


# 9, 10, 12: a failing pool: short error, one log line per step, fast take, target 0
@pytest.mark.daemon
def test_failing_pool_is_short_fast_and_quiet(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = daemon_factory(
        "--uv-pool-size",
        "1",
        "--uv-package",
        "runtimed-no-such-package-" + "x" * 40,
        "--backoff-base",
        "0.3",
    )

    def attempts() -> int:
        with bad.client() as c:
            error = c.status().pools["uv"].error
        return error.attempts if error is not None else 0

    wait_until(lambda: attempts() >= 3, 120, interval=0.05, what="three failed builds")
    r = cli("runt", "pool", "status", "--socket", str(bad.socket_path), columns=80)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    error_rows = [line for line in lines if "build" in line and "│" in line]
    assert len(error_rows) == 1, r.stdout  # the error fits one row, cut at a word
    assert "full errors: runt pool status --json" in r.stdout
    full = json.loads(
        cli("runt", "pool", "status", "--json", "--socket", str(bad.socket_path)).stdout
    )
    assert "runtimed-no-such-package-" in full["pools"]["uv"]["error"]["message"]

    started = time.monotonic()
    r = cli("runt", "pool", "take", "uv", "--socket", str(bad.socket_path))
    assert r.returncode == 1 and "cannot build envs" in r.stderr
    assert time.monotonic() - started < 20  # not the 60 s take timeout

    log = (bad.cache_dir / "runtimed.log").read_text().splitlines()
    failures = [line for line in log if "uv build failed" in line]
    assert 3 <= len(failures) <= attempts() + 2
    assert all(line[:4].isdigit() for line in log if line.strip()), "multi-line log entries"

    with SettingsClient(bad.socket_path) as settings:
        settings.set("uv.pool_size", 0)
    wait_until(lambda: attempts() == 0, 10, what="the error to go with the pool")
