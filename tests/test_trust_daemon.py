"""The trust gate in a real daemon: an untrusted notebook's kernel start fails at once and
installs nothing; Session.trust() approves; a change asks only for the new packages; a
notebook created here needs no approval."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import DaemonProcess
from runtimed import Session
from runtimed.errors import RuntimedError

pytestmark = pytest.mark.daemon


def write_notebook(path: Path, deps: list[str]) -> Path:
    metadata: dict[str, Any] = {"runt": {"uv": {"dependencies": deps}}}
    path.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4,
                                "nbformat_minor": 5}))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("trust-daemon") / "cache", ["--uv-pool-size", "0"])
    d.start()
    yield d
    d.stop()


def test_untrusted_notebook_fails_at_once_and_installs_nothing(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uv_cache = tmp_path / "uv-cache"  # this daemon's uv gets an empty cache of its own
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    d = daemon_factory("--uv-pool-size", "0", cache_dir=tmp_path / "cache")
    notebook = write_notebook(tmp_path / "nb.ipynb", ["six", "reqeusts"])
    with Session.open(notebook, d.socket_path) as session:
        started = time.monotonic()
        with pytest.raises(RuntimedError) as info:
            session.start_kernel()
        assert time.monotonic() - started < 5
        assert info.value.code == "untrusted_dependencies"
        assert "six" in info.value.message and "reqeusts (!)" in info.value.message
        assert "runt trust" in info.value.message
        report = session.trust(approve=False)
        assert {p["name"] for p in report["untrusted"]} == {"six", "reqeusts"}
        (typo,) = [p for p in report["untrusted"] if p["name"] == "reqeusts"]
        assert "requests" in typo["warnings"][0]
    assert not (d.cache_dir / "inline-envs").exists(), "no env was built"
    assert not uv_cache.exists() or not any(uv_cache.iterdir()), "uv never ran"


def test_trust_then_start_and_a_change_asks_only_for_new(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    notebook = write_notebook(tmp_path / "nb.ipynb", ["six"])
    with Session.open(notebook, daemon.socket_path) as session:
        with pytest.raises(RuntimedError, match="six"):
            session.start_kernel()
        approved = session.trust()
        assert [p["name"] for p in approved["approved"]] == ["six"] and not approved["untrusted"]
        session.start_kernel()
        result = session.run("import six; print(six.__name__)", timeout=120)
        assert result.stdout.strip() == "six"
        assert session.env_source == "uv:inline"
        session.shutdown_kernel()
        session.set_metadata("runt", {"uv": {"dependencies": ["six", "packaging"]}})
        session.sync()
        with pytest.raises(RuntimedError) as info:
            session.start_kernel()
        assert info.value.code == "untrusted_dependencies"
        assert "packaging" in info.value.message and "six" not in info.value.message
        pending = session.trust(approve=False)["untrusted"]
        assert [p["name"] for p in pending] == ["packaging"]


def test_a_notebook_created_here_is_trusted(daemon: DaemonProcess, tmp_path: Path) -> None:
    with Session.open(tmp_path / "new.ipynb", daemon.socket_path) as session:
        runt = session.get_metadata("runt")
        assert isinstance(runt, dict) and "created_here" in runt
        session.set_metadata("runt", {**runt, "uv": {"dependencies": ["six"]}})
        session.sync()
        report = session.trust(approve=False)
        assert report["untrusted"] == [] and "created here" in report["note"]
        session.save()
    # The marker travels in the file: reopened, it is still this user's notebook.
    saved = json.loads((tmp_path / "new.ipynb").read_text())
    assert "created_here" in saved["metadata"]["runt"]
    config = daemon.cache_dir / "config"
    assert oct(os.stat(config / "notebook-key").st_mode & 0o777) == "0o600"
