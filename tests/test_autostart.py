"""Auto-start: a client that finds no daemon starts one (once, however many clients try
at the same moment); RUNTIMED_NO_AUTOSTART=1 keeps today's clear error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import runtimed
from helpers import wait_until
from runtimed.client.autostart import daemon_argv
from runtimed.errors import DaemonNotRunningError

pytestmark = pytest.mark.daemon


def daemons_for(cache: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "runtimed" in cmdline and "run" in cmdline and str(cache) in cmdline:
            found.append(proc)
    return found


@pytest.fixture
def autostart_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache dir with no daemon, auto-start on; whatever started is stopped after."""
    monkeypatch.delenv("RUNTIMED_NO_AUTOSTART", raising=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    # Small pools: the daemon a test starts must not build the defaults' 3 + 3 envs.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.json").write_text(
        '{"uv": {"pool_size": 1}, "conda": {"pool_size": 0}, "kernel_pool": {"size": 0}}'
    )
    monkeypatch.setenv("RUNTIMED_CONFIG_DIR", str(tmp_path / "config"))
    yield cache
    for proc in daemons_for(cache):
        proc.terminate()
        proc.wait(timeout=30)


def test_a_session_starts_the_daemon_it_needs(autostart_cache: Path) -> None:
    sock = autostart_cache / "runtimed.sock"
    with runtimed.Session(socket_path=sock) as s:
        assert s.run("1 + 1").display_data[0].data["text/plain"] == "2"
    (daemon,) = daemons_for(autostart_cache)
    with runtimed.DaemonClient(sock) as client:  # the next client uses the same daemon
        assert client.daemon_info().pid == daemon.pid
    assert (autostart_cache / "runtimed.log").exists()


def test_twenty_clients_at_once_leave_one_daemon(autostart_cache: Path) -> None:
    sock = autostart_cache / "runtimed.sock"
    pids: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with runtimed.DaemonClient(sock) as c:
                pids.append(c.daemon_info().pid)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(pids) == 20 and len(set(pids)) == 1
    time.sleep(0.5)  # a losing duplicate would still be exiting now
    wait_until(lambda: len(daemons_for(autostart_cache)) == 1, 10, what="one daemon")


def test_no_autostart_keeps_the_clear_error(tmp_path: Path) -> None:
    # (the test session sets RUNTIMED_NO_AUTOSTART=1)
    with pytest.raises(DaemonNotRunningError, match="runtimed run"):
        runtimed.DaemonClient(tmp_path / "runtimed.sock").ping()
    assert not daemons_for(tmp_path)


def test_the_daemon_command_follows_the_socket(tmp_path: Path) -> None:
    assert daemon_argv(tmp_path / "runtimed.sock")[-2:] == ["--cache-dir", str(tmp_path)]
    assert daemon_argv(tmp_path / "other.sock")[-2:] == ["--socket", str(tmp_path / "other.sock")]


def test_an_outdated_daemon_is_named_with_the_fix() -> None:
    from runtimed.client.core import version_note

    assert version_note(runtimed.__version__) is None
    note = version_note("0.0.1", installed="0.2.0")
    assert note is not None
    assert "0.2.0 is installed" in note and "runs 0.0.1" in note
    assert "runt daemon restart" in note


def test_an_incompatible_protocol_names_both_versions() -> None:
    from runtimed.client.core import parse_handshake_reply

    reply = b'{"ok": true, "protocol_version": 9, "daemon_version": "9.0.0"}'
    with pytest.raises(runtimed.RuntimedError) as info:
        parse_handshake_reply(reply)
    message = info.value.message
    assert info.value.code == "version_mismatch"
    assert "9.0.0" in message and runtimed.__version__ in message
    assert "runt daemon restart" in message
