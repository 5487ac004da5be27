"""Notebook rooms: shared documents across real client processes, persistence, .ipynb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

import runtimed
from helpers import ROOT, DaemonProcess, wait_until
from runtimed.protocol.framing import PREAMBLE, encode_frame

pytestmark = pytest.mark.daemon

EDITOR = ROOT / "tests" / "clients" / "editor.py"


@pytest.fixture
def rooms_daemon(daemon_factory: Callable[..., DaemonProcess]) -> DaemonProcess:
    return daemon_factory("--uv-pool-size", "0", "--conda-pool-size", "0")


def session(d: DaemonProcess, notebook_id: str = "nb") -> runtimed.Session:
    return runtimed.Session(notebook_id, socket_path=d.socket_path).connect()


def run_editors(
    d: DaemonProcess, tmp_path: Path, notebook_id: str, argvs: list[list[str]]
) -> list[list[dict[str, str]]]:
    """Start one editor process per argv, release them together, return each final view."""
    go = tmp_path / f"go-{notebook_id}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(EDITOR), str(d.socket_path), notebook_id, str(go), *argv],
            stdout=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "done"
    Path(f"{go}.finish").touch()
    views = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        views.append(json.loads(out.strip().splitlines()[-1]))
    return views


def test_edit_reaches_other_peer_and_late_joiner_gets_full_state(rooms_daemon: DaemonProcess):
    a, b = session(rooms_daemon), session(rooms_daemon)
    cid = a.create_cell("x = 1")
    a.set_metadata("title", "shared")
    wait_until(lambda: [c.source for c in b.get_cells()] == ["x = 1"], 5, 0.001)
    b.set_source(cid, "x = 2")
    wait_until(lambda: a.get_cell(cid).source == "x = 2", 5, 0.001)
    late = session(rooms_daemon)
    assert [c.source for c in late.get_cells()] == ["x = 2"]
    assert late.get_metadata("title") == "shared"
    for s in (a, b, late):
        s.close()


def test_three_processes_typing_in_one_cell_converge(rooms_daemon: DaemonProcess, tmp_path: Path):
    s = session(rooms_daemon, "typing")
    cid = s.create_cell("start")
    views = run_editors(
        rooms_daemon, tmp_path, "typing", [["type", name, cid, "40"] for name in ("A", "B", "C")]
    )
    texts = {v[0]["source"] for v in views}
    assert len(texts) == 1, texts
    final = texts.pop()
    assert len(final) == len("start") + 3 * 40 * 2
    for name in "ABC":  # every keystroke of every client is there exactly once
        assert final.count(name) == 40
    wait_until(lambda: s.get_cell(cid).source == final, 5)
    s.close()


def test_create_delete_move_races_converge_without_duplicates(
    rooms_daemon: DaemonProcess, tmp_path: Path
):
    s = session(rooms_daemon, "churn")
    for i in range(5):
        s.create_cell(f"seed-{i}")
    views = run_editors(
        rooms_daemon, tmp_path, "churn", [["churn", name, "30"] for name in ("A", "B", "C")]
    )
    assert views[0] == views[1] == views[2]
    ids = [c["id"] for c in views[0]]
    assert len(ids) == len(set(ids)), "a cell id appears twice"
    wait_until(lambda: [c.id for c in s.get_cells()] == ids, 5)
    s.close()


def test_reconnect_after_daemon_sigkill_loses_and_duplicates_nothing(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
):
    args = ("--uv-pool-size", "0", "--conda-pool-size", "0")
    d = daemon_factory(*args, cache_dir=tmp_path / "c")
    s = session(d, "durable")
    ids = [s.create_cell(f"cell {i}") for i in range(30)]
    s.set_source(ids[3], "edited ✓")
    s.delete_cell(ids[4])
    d.kill9()
    d2 = daemon_factory(*args, cache_dir=tmp_path / "c")
    s.append_source(ids[5], " more")  # the old session reconnects by itself
    expected = [c.id for c in s.get_cells()]
    assert len(expected) == 29 and len(set(expected)) == 29
    fresh = session(d2, "durable")
    cells = fresh.get_cells()
    assert [c.id for c in cells] == expected
    assert cells[3].source == "edited ✓" and cells[4].source == "cell 5 more"
    s.close()
    fresh.close()


def test_edits_while_the_daemon_is_down_arrive_exactly_once(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
):
    args = ("--uv-pool-size", "0", "--conda-pool-size", "0")
    d = daemon_factory(*args, cache_dir=tmp_path / "c")
    s = session(d, "offline-edits")
    first = s.create_cell("before")
    d.kill9()
    started = time.monotonic()
    offline = s.create_cell("made offline")  # applies locally, never raises
    s.set_source(first, "before, edited offline")
    assert time.monotonic() - started < 10
    assert [c.source for c in s.document.get_cells()] == ["before, edited offline", "made offline"]
    d2 = daemon_factory(*args, cache_dir=tmp_path / "c")
    s.sync(timeout=60)  # reconnected by itself; the daemon has both edits, durably
    fresh = session(d2, "offline-edits")
    cells = fresh.get_cells()
    assert [(c.id, c.source) for c in cells] == [
        (first, "before, edited offline"),
        (offline, "made offline"),
    ]
    s.close()
    fresh.close()


def test_client_from_another_epoch_is_reset_not_merged(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
):
    args = ("--uv-pool-size", "0", "--conda-pool-size", "0")
    d = daemon_factory(*args, cache_dir=tmp_path / "c1")
    s = session(d, "epoch")
    s.create_cell("old history")
    d.stop()
    # A different daemon (empty cache) hosts a new room with the same id: a new epoch.
    d2 = daemon_factory(*args, cache_dir=tmp_path / "c2")
    other = runtimed.Session("epoch", socket_path=d2.socket_path).connect()
    other.create_cell("new history")
    s2 = runtimed.Session("epoch", socket_path=d2.socket_path)
    s2._session._epoch = s._session._epoch  # history from the old epoch
    s2._session._nb = s._session.document
    s2.connect()
    assert [c.source for c in s2.get_cells()] == ["new history"]
    assert [c.source for c in other.get_cells()] == ["new history"]
    for x in (s, other, s2):
        x.close()


def test_ipynb_round_trip_is_valid_and_keeps_ids_metadata_outputs(
    rooms_daemon: DaemonProcess, tmp_path: Path
):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    code = nbformat.v4.new_code_cell("print('hi')", id="keep-this-id")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    code.execution_count = 3
    code.metadata["tags"] = ["a"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title 中文 🎉"), code]
    path = tmp_path / "book.ipynb"
    nbformat.write(nb, path)

    a = runtimed.Session.open(path, socket_path=rooms_daemon.socket_path).connect()
    b = runtimed.Session.open(str(path), socket_path=rooms_daemon.socket_path).connect()
    assert a.notebook_id == b.notebook_id == str(path.resolve())
    cell = a.get_cell("keep-this-id")
    assert cell.execution_count == 3 and cell.outputs[0].text == "hi\n"
    b.create_cell("added = True")
    a.sync()
    wait_until(lambda: len(a.get_cells()) == 3, 5)
    assert a.save() == str(path.resolve())
    saved = nbformat.read(path, as_version=4)
    nbformat.validate(saved)
    assert [c.id for c in saved.cells][:2] == [nb.cells[0].id, "keep-this-id"]
    assert saved.cells[0].source == "# Title 中文 🎉"
    assert saved.cells[1].outputs[0]["text"] == "hi\n"
    assert saved.cells[1].metadata["tags"] == ["a"]
    assert saved.cells[2].source == "added = True"
    assert saved.metadata["kernelspec"]["name"] == "python3"
    a.close()
    b.close()


@pytest.mark.parametrize("content", ["{not json", '{"cells": "nope", "nbformat": 4}', "[]"])
def test_invalid_notebook_file_is_a_clear_error_and_nothing_written(
    rooms_daemon: DaemonProcess, tmp_path: Path, content: str
):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "bad.ipynb"
    path.write_text(content)
    with pytest.raises(runtimed.RuntimedError, match=r"not a (valid )?notebook"):
        runtimed.Session.open(path, socket_path=rooms_daemon.socket_path).connect()
    assert path.read_text() == content
    assert list(folder.iterdir()) == [path]
    with rooms_daemon.client() as c:
        c.ping()


def test_unicode_sources_survive_edits_by_position(rooms_daemon: DaemonProcess):
    a, b = session(rooms_daemon, "uni"), session(rooms_daemon, "uni")
    cid = a.create_cell("🎉中文")
    a.insert_source(cid, 1, "X")  # after the emoji, by character
    b.sync()
    wait_until(lambda: b.get_cell(cid).source == "🎉X中文", 5)
    b.insert_source(cid, 4, "👍")
    b.set_source(cid, b.get_cell(cid).source.replace("X", "日本"))
    wait_until(lambda: a.get_cell(cid).source == "🎉日本中文👍", 5)
    a.close()
    b.close()


def test_unknown_cell_is_not_found(rooms_daemon: DaemonProcess):
    s = session(rooms_daemon)
    for call in (
        lambda: s.get_cell("cell-nope"),
        lambda: s.set_source("cell-nope", "x"),
        lambda: s.delete_cell("cell-nope"),
        lambda: s.move_cell("cell-nope", 0),
    ):
        with pytest.raises(runtimed.RuntimedError, match="not found"):
            call()
    s.close()


def test_session_api_shape(rooms_daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUNTIMED_SOCKET_PATH", str(rooms_daemon.socket_path))
    with runtimed.Session() as s:
        assert s.is_connected and s.notebook_id.startswith("untitled-")
        assert s.notebook_id in repr(s) and "connected" in repr(s)
        first = s.create_cell("a")
        md = s.create_cell("# b", cell_type="markdown", index=0)
        third = s.create_cell("c", index=1)
        assert first.startswith("cell-") and len(first) == len("cell-") + 36
        assert [c.id for c in s.get_cells()] == [md, third, first]
        s.move_cell(first, 0)
        s.append_source(first, "!")
        s.delete_cell(third)
        assert [(c.id, c.source) for c in s.get_cells()] == [(first, "a!"), (md, "# b")]
        assert s.get_cell(md).cell_type == "markdown"
        s.set_metadata("k", {"n": 1})
        assert s.get_metadata("k") == {"n": 1}
    assert not s.is_connected


async def test_async_session_mirrors_session(rooms_daemon: DaemonProcess):
    async with runtimed.AsyncSession("async-nb", socket_path=rooms_daemon.socket_path) as s:
        cid = await s.create_cell("y = 1")
        await s.set_source(cid, "y = 2")
        assert (await s.get_cell(cid)).source == "y = 2"
        with pytest.raises(runtimed.RuntimedError, match="not found"):
            await s.get_cell("cell-missing")


def test_list_rooms_and_eviction_keeps_the_document(rooms_daemon: DaemonProcess):
    from runtimed.client.settings_client import SettingsClient

    with SettingsClient(rooms_daemon.socket_path) as settings:
        settings.set("keep_alive_secs", 0.5)
    s = session(rooms_daemon, "evictme")
    s.create_cell("persisted")
    with rooms_daemon.client() as c:
        room = next(r for r in c.list_rooms() if r.notebook_id == "evictme")
        assert room.active_peers == 1 and not room.has_kernel
        s.close()
        wait_until(
            lambda: all(r.notebook_id != "evictme" for r in c.list_rooms()),
            10,
            what="room eviction",
        )
    back = session(rooms_daemon, "evictme")
    assert [c.source for c in back.get_cells()] == ["persisted"]
    back.close()


def test_malformed_notebook_frames_close_only_that_connection(rooms_daemon: DaemonProcess):
    import socket as sk

    s = session(rooms_daemon, "victim")
    s.create_cell("still here")
    for bad in (b"", b"\x09junk", b"\x00\x00\xff\xff\xff", b"\x01{not json", b"\x00\x05\x02"):
        conn = sk.socket(sk.AF_UNIX)
        conn.settimeout(5)
        conn.connect(str(rooms_daemon.socket_path))
        conn.sendall(PREAMBLE + encode_frame(b'{"channel":"notebook_sync","notebook_id":"victim"}'))
        conn.sendall(encode_frame(bad))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.close()
        if bad != b"\x01{not json":
            assert b'"event":"error"' in data, bad
    assert [c.source for c in s.get_cells()] == ["still here"]
    s.create_cell("and serving")
    assert len(session(rooms_daemon, "victim").get_cells()) == 2


def _deep_update(depth: int) -> bytes:
    """A y-protocols update message (about 2 bytes a level) of an array nested ``depth``
    deep in root `cells`: pycrdt overflows its stack decoding it."""
    body = b"\x01\x01\x07\x00\x08\x01\x05cells\x01" + b"\x75\x01" * depth + b"\x7e\x00"
    length, n = bytearray(), len(body)
    while n >= 0x80:
        length.append((n & 0x7F) | 0x80)
        n >>= 7
    return b"\x00\x02" + bytes(length) + bytes([n]) + body


@pytest.mark.parametrize("channel", ["notebook_sync", "settings_sync"])
def test_a_deeply_nested_update_closes_only_its_sender(rooms_daemon: DaemonProcess, channel: str):
    import socket as sk

    s = session(rooms_daemon, "victim")
    s.create_cell("still here")
    conn = sk.socket(sk.AF_UNIX)
    conn.settimeout(10)
    conn.connect(str(rooms_daemon.socket_path))
    handshake = {"channel": channel, "notebook_id": "victim"}
    conn.sendall(PREAMBLE + encode_frame(json.dumps(handshake).encode()))
    data = conn.recv(65536)  # the handshake's answer: the channel's frame limit applies
    assert b'"ok":true' in data
    conn.sendall(encode_frame(b"\x00" + _deep_update(50_000)))  # 100 KB
    while chunk := conn.recv(65536):  # the daemon closes the connection
        data += chunk
    conn.close()
    assert b'"code":"update_refused"' in data and b"deeper than 100" in data
    assert rooms_daemon.proc.poll() is None, "the daemon is alive"
    assert [c.source for c in s.get_cells()] == ["still here"]
    s.create_cell("and serving")
    assert len(session(rooms_daemon, "victim").get_cells()) == 2


def test_settings_sync_validate_persist_and_apply(rooms_daemon: DaemonProcess):
    from runtimed.client.settings_client import SettingsClient

    with SettingsClient(rooms_daemon.socket_path) as settings:
        assert settings.get("uv.pool_size") == 0  # command-line override for this run
        with pytest.raises(runtimed.RuntimedError, match=r"uv\.pool_size"):
            settings.set("uv.pool_size", -1)
        with pytest.raises(runtimed.RuntimedError, match="unknown setting"):
            settings.set("nope", 1)
        assert settings.set("uv.default_packages", ["six"]) == ["six"]
        assert settings.set("uv.pool_size", 1) == 1
    stored = json.loads((rooms_daemon.cache_dir / "config" / "settings.json").read_text())
    assert stored["uv"] == {"default_packages": ["six"], "pool_size": 1}
    rooms_daemon.wait_pool("uv", 1)  # took effect without a restart
    with rooms_daemon.client() as c:
        env = c.take("uv")
    assert env is not None and "six" in env.prewarmed_packages
    out = subprocess.run([env.python_path, "-c", "import six, ipykernel"], capture_output=True)
    assert out.returncode == 0, out.stderr


def test_runt_rooms_and_config_cli(rooms_daemon: DaemonProcess):
    s = session(rooms_daemon, "cli-room")
    env = {**os.environ, "RUNTIMED_SOCKET_PATH": str(rooms_daemon.socket_path)}

    def runt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runtimed.cli.runt_cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    out = runt("rooms", "--json")
    assert out.returncode == 0
    assert any(
        r["notebook_id"] == "cli-room" and r["active_peers"] == 1 for r in json.loads(out.stdout)
    )
    assert "cli-room" in runt("rooms").stdout
    assert runt("config", "set", "keep_alive_secs", "12").returncode == 0
    assert json.loads(runt("config", "get", "keep_alive_secs").stdout) == 12.0
    bad = runt("config", "set", "default_python_env", "pip")
    assert bad.returncode != 0 and "default_python_env" in bad.stderr
    assert json.loads(runt("config", "show").stdout)["keep_alive_secs"] == 12.0
    s.close()


def test_daemon_client_close_leaves_daemon_running(rooms_daemon: DaemonProcess):
    c = runtimed.DaemonClient(rooms_daemon.socket_path)
    c.ping()
    c.close()
    time.sleep(0)  # nothing to wait for: close is local
    with rooms_daemon.client() as again:
        assert again.ping().protocol_version == 1


def _raw_room_connection(d: DaemonProcess, notebook_id: str):  # type: ignore[no-untyped-def]
    import socket as sk

    conn = sk.socket(sk.AF_UNIX)
    conn.settimeout(10)
    conn.setsockopt(sk.SOL_SOCKET, sk.SO_RCVBUF, 64 * 1024)  # a slow reader's small buffer
    conn.connect(str(d.socket_path))
    handshake = {"channel": "notebook_sync", "notebook_id": notebook_id}
    conn.sendall(PREAMBLE + encode_frame(json.dumps(handshake).encode()))
    assert b'"ok":true' in conn.recv(65536)
    return conn


def test_presence_is_small_and_skipped_by_slow_readers(rooms_daemon: DaemonProcess):
    """A 60 MB awareness frame is refused; 1 MB ones to 8 peers that never read are not
    queued for them (before: 60 MB x 8 peers queued, 658 MB of daemon memory)."""
    import psutil

    s = session(rooms_daemon, "presence")
    s.create_cell("here")
    slow = [_raw_room_connection(rooms_daemon, "presence") for _ in range(8)]
    daemon = psutil.Process(rooms_daemon.proc.pid)
    before = daemon.memory_info().rss
    sender = _raw_room_connection(rooms_daemon, "presence")
    sender.sendall(encode_frame(b"\x04" + b"p" * 60_000_000, 2**30))
    data = b""
    while chunk := sender.recv(65536):
        data += chunk
    assert b'"code":"frame_too_large"' in data and b"presence may use at most" in data
    sender = _raw_room_connection(rooms_daemon, "presence")
    for i in range(100):
        sender.sendall(encode_frame(b"\x04" + bytes([i]) * 1_000_000))
    assert s.create_cell("still serving")  # every frame before it was handled
    grown = (daemon.memory_info().rss - before) / 2**20
    assert grown < 80, f"daemon grew {grown:.0f} MB for 100 MB of presence to 8 slow peers"
    assert [c.source for c in session(rooms_daemon, "presence").get_cells()] == [
        "here",
        "still serving",
    ]
    for conn in [*slow, sender]:
        conn.close()


def test_the_runtime_document_stays_the_same_size_however_many_runs(
    daemon_factory: Callable[..., DaemonProcess],
):
    """500 records are kept; the tombstones of deleted ones are dropped by rebuilding the
    document, and every peer's replica follows (event ``runtime_reset``)."""
    from runtimed.documents.runtime import RuntimeDoc

    d = daemon_factory("--uv-pool-size", "1", "--conda-pool-size", "0")
    d.wait_pool("uv", 1)
    s, watcher = session(d, "many-runs"), session(d, "many-runs")
    cell = s.create_cell("1")
    sizes = {}
    for run in range(1, 1101):
        s.execute_cell(cell)
        if run in (550, 1100):
            s.sync(10)
            sizes[run] = len(s.runtime_doc.get_update())
    assert sizes[1100] < sizes[550] * 1.2, sizes  # before: +225 bytes a run, for good
    last = s.execute_cell(cell)
    for replica in (s, watcher):
        wait_until(
            lambda r=replica: RuntimeDoc(r.runtime_doc).execution(last.execution_id),
            10,
            what="the last record in every replica",
        )
        records = RuntimeDoc(replica.runtime_doc).executions_map
        assert len(records) <= 501
        assert RuntimeDoc(replica.runtime_doc).kernel()["lifecycle"] == "running"
