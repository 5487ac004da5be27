"""Issue 32 end to end: a real daemon restarted over a damaged stored snapshot opens the
notebook from its file, saves every cell, and keeps the damaged files aside."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

import runtimed
from helpers import DaemonProcess

pytestmark = pytest.mark.daemon


def test_a_damaged_snapshot_reopens_as_the_file_and_save_keeps_its_cells(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    path = tmp_path / "three.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"x = {i}") for i in range(3)]
    nbformat.write(nb, path)
    cache = tmp_path / "cache"
    args = ("--uv-pool-size", "0")

    first = daemon_factory(*args, cache_dir=cache)
    session = runtimed.Session.open(path, socket_path=first.socket_path).connect()
    assert len(session.get_cells()) == 3
    session.close()
    first.stop()

    docs = cache / "notebook-docs"
    (snapshot,) = docs.glob("*.ydoc")
    snapshot.write_bytes(os.urandom(300))

    second = daemon_factory(*args, cache_dir=cache)
    session = runtimed.Session.open(path, socket_path=second.socket_path).connect()
    assert [c.source for c in session.get_cells()] == ["x = 0", "x = 1", "x = 2"]
    session.create_cell("new")
    session.save()
    session.close()
    saved = [c.source for c in nbformat.read(path, as_version=4).cells]
    assert saved == ["x = 0", "x = 1", "x = 2", "new"]
    kept = sorted(p.name for p in docs.glob("*.corrupt-*"))
    assert any(name.startswith(snapshot.name + ".corrupt-") for name in kept)
    warnings = [line for line in second.log_path.read_text().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and all(name in warnings[0] for name in kept), warnings
