"""The kernel pool: a new notebook gets a started kernel, adapted so that nothing tells it
from a fresh one; other env sources still get their own env. Real daemon, real kernels."""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import runtimed
from helpers import DaemonProcess, wait_until
from runtimed.client.settings_client import SettingsClient

pytestmark = pytest.mark.daemon

PROBE = """\
import json, os, sys
import helper_next_to_notebook as helper
print(json.dumps({
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "helper": helper.VALUE,
    "helper_file": helper.__file__,
    "env": dict(os.environ),
    "dh": [str(d) for d in _dh],
    "history": len(In),
    "outputs": dict(Out),
    "unders": [_, __, ___],
    "hooks": {k: len(v) for k, v in get_ipython().events.callbacks.items()},
    "user_names": sorted(n for n in globals() if n.startswith("__runtimed")),
}))
"""


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(
        tmp_path_factory.mktemp("kpool") / "cache",
        ["--uv-pool-size", "2", "--kernel-pool-size", "1"],
    )
    d.start()
    yield d
    d.stop()


def kernels_ready(d: DaemonProcess) -> int:
    with d.client() as c:
        kernels = c.status().kernels
    assert kernels is not None
    return kernels.available


def handed_out(d: DaemonProcess) -> int:
    return (d.cache_dir / "runtimed.log").read_text().count("handed out a pooled kernel")


def notebook_dir(base: Path, name: str) -> Path:
    folder = base / name
    folder.mkdir()
    (folder / "helper_next_to_notebook.py").write_text(f"VALUE = {name!r}\n")
    nb = nbformat.v4.new_notebook()
    nbformat.write(nb, folder / "nb.ipynb")
    return folder


def probe(d: DaemonProcess, folder: Path) -> tuple[dict[str, Any], runtimed.ExecutionResult]:
    with runtimed.Session.open(folder / "nb.ipynb", socket_path=d.socket_path) as s:
        result = s.run(PROBE)
        assert result.success, result.error
        return json.loads(result.stdout), result


def test_a_pooled_kernel_is_indistinguishable_from_a_fresh_one(
    pooled: DaemonProcess, tmp_path: Path
) -> None:
    wait_until(lambda: kernels_ready(pooled) == 1, 120, what="a pooled kernel")
    before = handed_out(pooled)
    warm, warm_result = probe(pooled, notebook_dir(tmp_path, "warm"))
    assert handed_out(pooled) == before + 1  # it really was the pooled kernel

    with SettingsClient(pooled.socket_path) as settings:
        settings.set("kernel_pool.size", 0)  # the next notebook starts a fresh kernel
        try:
            wait_until(lambda: kernels_ready(pooled) == 0, 30, what="an empty kernel pool")
            fresh, fresh_result = probe(pooled, notebook_dir(tmp_path, "fresh"))
        finally:
            settings.set("kernel_pool.size", 1)
    assert handed_out(pooled) == before + 1

    for seen, name in ((warm, "warm"), (fresh, "fresh")):
        folder = str(tmp_path / name)
        assert seen["cwd"] == folder and seen["path0"] == folder
        assert seen["helper"] == name and seen["helper_file"].startswith(folder)
        assert seen["dh"] == [folder]
        assert seen["user_names"] == []
    assert warm["history"] == fresh["history"]
    # The warm-up's results went through the display hook and were forgotten.
    assert warm["outputs"] == fresh["outputs"] == {}
    assert warm["unders"] == fresh["unders"] == ["", "", ""]
    assert warm["hooks"] == fresh["hooks"]  # the adoption hook is gone once it ran
    # Each kernel has an env of its own (VIRTUAL_ENV, PATH): the same but for that dir.
    envs = [
        {k: v.replace(e["VIRTUAL_ENV"], "<env>") for k, v in e.items()}
        for e in (warm["env"], fresh["env"])
    ]
    assert envs[0] == envs[1]
    assert warm_result.execution_count == fresh_result.execution_count == 1
    assert [o.output_type for o in warm_result.outputs] == ["stream"]  # nothing else shown


def test_restart_keeps_the_notebooks_directory(pooled: DaemonProcess, tmp_path: Path) -> None:
    wait_until(lambda: kernels_ready(pooled) == 1, 120, what="a pooled kernel")
    folder = notebook_dir(tmp_path, "restarted")
    with runtimed.Session.open(folder / "nb.ipynb", socket_path=pooled.socket_path) as s:
        assert s.run("import os; os.getcwd()").display_data[0].data["text/plain"] == repr(
            str(folder)
        )
        s.restart_kernel()
        result = s.run("import os, sys; (os.getcwd(), sys.path[0])")
        shown = ast.literal_eval(result.display_data[0].data["text/plain"])
        assert shown == (str(folder), str(folder))
        assert result.execution_count == 1


def test_other_env_sources_get_their_own_env(pooled: DaemonProcess, tmp_path: Path) -> None:
    wait_until(lambda: kernels_ready(pooled) == 1, 120, what="a pooled kernel")
    before = handed_out(pooled)
    folder = notebook_dir(tmp_path, "project")
    (folder / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n')
    with runtimed.Session.open(folder / "nb.ipynb", socket_path=pooled.socket_path) as s:
        s.start_kernel()
        assert s.env_source == "uv:pyproject"
        assert s.run("1 + 1").display_data[0].data["text/plain"] == "2"
    assert handed_out(pooled) == before and kernels_ready(pooled) == 1


def test_a_flush_replaces_pooled_kernels(pooled: DaemonProcess) -> None:
    wait_until(lambda: kernels_ready(pooled) == 1, 120, what="a pooled kernel")
    log = pooled.cache_dir / "runtimed.log"
    ready_lines = log.read_text().count("kernel pool: 1/1 ready")
    with pooled.client() as c:
        c.flush_pool()
    wait_until(
        lambda: log.read_text().count("kernel pool: 1/1 ready") > ready_lines,
        120,
        what="a kernel from the flushed pool's new envs",
    )
    before = handed_out(pooled)
    with runtimed.Session(socket_path=pooled.socket_path) as s:
        assert s.run("1 + 1").success
    assert handed_out(pooled) == before + 1


def test_pool_status_shows_the_kernel_pool(pooled: DaemonProcess) -> None:
    wait_until(lambda: kernels_ready(pooled) == 1, 120, what="a pooled kernel")
    with pooled.client() as c:
        kernels = c.status().kernels
    assert kernels is not None
    assert (kernels.env_source, kernels.target, kernels.error) == ("uv:prewarmed", 1, None)
    started = time.monotonic()
    with runtimed.Session(socket_path=pooled.socket_path) as s:
        assert s.run("1 + 1").success
    assert time.monotonic() - started < 30
