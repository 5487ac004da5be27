"""Disk: one inline env per dependency set however spelled; `runt env list|stats|clean`
and the collector remove unused envs and forgotten rooms, never what is in use."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import runtimed
from helpers import DaemonProcess
from runtimed.daemon.envs.inline_envs import normalize_specs

BIN = Path(sys.executable).parent


def runt(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runt"), *args, "--socket", str(d.socket_path)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_spellings_of_one_dependency_set_are_one_key() -> None:
    spellings = [
        ["ipykernel>=6"],
        ["ipykernel >= 6.0"],
        ["IPyKernel>=6.0.0", "ipykernel>=6"],
        ["ipykernel  >=6.0"],
    ]
    assert len({normalize_specs(s) for s in spellings}) == 1
    assert normalize_specs(["numpy[extra2,Extra1]>=1.20,<2"]) == ("numpy[extra1,extra2]<2,>=1.20",)
    assert normalize_specs(["pandas~=2.0"]) != normalize_specs(["pandas~=2"])  # differ
    assert normalize_specs(["not a spec !!"]) == ("not a spec !!",)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("disk") / "cache", ["--uv-pool-size", "1"])
    daemon.start()
    yield daemon
    daemon.stop()


def inline_notebook(path: Path, *deps: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["runt"] = {"uv": {"dependencies": list(deps)}}
    nb.cells = [nbformat.v4.new_code_cell("import ipykernel; 1 + 1")]
    nbformat.write(nb, path)
    return path


def inline_envs(d: DaemonProcess) -> list[dict[str, object]]:
    listed = json.loads(runt(d, "env", "list", "--json").stdout)
    return [e for e in listed if not str(e["kind"]).startswith("pool-")]


@pytest.mark.daemon
def test_one_env_per_dependency_set_and_nothing_in_use_is_removed(
    d: DaemonProcess, tmp_path: Path
) -> None:
    spellings = ["ipykernel>=6", "ipykernel >= 6.0", "IPyKernel>=6.0.0"]
    sessions = []
    for i, spec in enumerate(spellings):
        s = runtimed.Session.open(inline_notebook(tmp_path / f"n{i}.ipynb", spec), d.socket_path)
        assert s.run("1 + 1").success
        assert s.env_source == "uv:inline"
        sessions.append(s)
    (env,) = inline_envs(d)
    assert env["in_use"] is True and env["kind"] == "uv" and int(str(env["size_bytes"])) > 0

    r = runt(d, "env", "clean", "--all")  # kernels run in it: it stays
    assert r.returncode == 0, r.stderr
    assert "removed 0 env(s)" in r.stdout and len(inline_envs(d)) == 1
    assert sessions[0].run("2 + 2").success  # and still works

    for s in sessions:
        s.shutdown_kernel()
        s.close()
    r = runt(d, "env", "clean", "--all", "--dry-run")
    assert "would remove 1 env(s)" in r.stdout and len(inline_envs(d)) == 1
    r = runt(d, "env", "clean", "--all")
    assert "removed 1 env(s)" in r.stdout, r.stdout
    assert inline_envs(d) == []


@pytest.mark.daemon
def test_stats_and_forgotten_rooms(d: DaemonProcess) -> None:
    with runtimed.Session("untitled-to-forget", socket_path=d.socket_path) as s:
        s.create_cell("x = 1")
    with runtimed.Session("untitled-kept-open", socket_path=d.socket_path) as kept:
        kept.create_cell("y = 1")
        stats = json.loads(runt(d, "env", "stats", "--json").stdout)
        assert stats["stored rooms"]["count"] >= 2 and stats["pool-uv"]["count"] >= 1
        text = runt(d, "env", "stats").stdout
        assert "stored rooms" in text and "total" in text
        r = runt(d, "env", "clean", "--max-age-days", "30")  # grace period: nothing yet
        assert "0 stored room(s)" in r.stdout, r.stdout
        with d.client() as c:
            evicted = c.list_rooms()
        assert any(room.notebook_id == "untitled-kept-open" for room in evicted)
        # --all has no grace: every room not open whose notebook is untitled or gone
        wait_gone = runt(d, "env", "clean", "--all")
        assert wait_gone.returncode == 0
        with runtimed.Session("untitled-kept-open", socket_path=d.socket_path) as again:
            assert [c.source for c in again.get_cells()] == ["y = 1"]  # open: kept


@pytest.mark.daemon
def test_clean_rejects_bad_input(d: DaemonProcess) -> None:
    r = runt(d, "env", "clean", "--max-age-days", "-1")
    assert r.returncode == 1 and r.stderr.startswith("error:")
