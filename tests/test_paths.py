"""Open and save take absolute paths: the daemon's working directory means nothing to a
client, which resolves relative paths against its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import runtimed
from helpers import DaemonProcess
from runtimed.client.channel import open_blocking

pytestmark = pytest.mark.daemon


def test_relative_paths_are_refused_by_the_daemon(daemon: DaemonProcess) -> None:
    with pytest.raises(runtimed.RuntimedError) as info:
        open_blocking(daemon.socket_path, "open_notebook", 10, autostart=False, path="a.ipynb")
    assert info.value.code == "invalid_path" and "absolute" in info.value.message
    with runtimed.Session(socket_path=daemon.socket_path) as s:
        with pytest.raises(runtimed.RuntimedError) as info:
            s.request("save", path="relative.ipynb")
        assert info.value.code == "invalid_path"


def test_clients_resolve_relative_paths_against_their_own_cwd(
    daemon: DaemonProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with runtimed.Session.open("here.ipynb", socket_path=daemon.socket_path) as s:
        assert s.path == os.path.realpath(tmp_path / "here.ipynb")
        s.create_cell("x = 1")
        assert s.save() == s.path
        assert s.save("copy.ipynb") == str(tmp_path / "copy.ipynb")
    assert (tmp_path / "here.ipynb").exists() and (tmp_path / "copy.ipynb").exists()
