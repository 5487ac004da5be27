"""pixi:toml end to end on a real daemon, with ``tests/pixi_double.py`` standing in for the
pixi binary (which cannot be had here): the nearest pixi.toml wins ``auto``, its
dependencies go through the trust gate (a pixi.toml in a directory others may write is
not the user's own: nothing runs until approved; one the user keeps is trusted), then
``pixi install --manifest-path <pixi.toml>`` runs and the kernel starts from the project's
``.pixi/envs/default`` and runs a cell. The missing-binary errors: test_env_sources.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import DaemonProcess
from pixi_double import calls, install_pixi_double
from runtimed import Session
from runtimed.errors import RuntimedError

pytestmark = pytest.mark.daemon

PIXI_TOML = """\
[workspace]
name = "demo"
channels = ["conda-forge"]
platforms = ["linux-64"]

[dependencies]
python = ">=3.10"
ipykernel = "*"
numpy = ">=1.26"

[pypi-dependencies]
rich = "*"
"""


def test_a_pixi_project_runs_its_kernel_after_the_trust_gate(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    manifest = project / "pixi.toml"
    manifest.write_text(PIXI_TOML)
    notebook = project / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                    "nbformat_minor": 5}))  # fmt: skip
    log = tmp_path / "pixi-calls.jsonl"
    pixi = install_pixi_double(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{pixi.parent}{os.pathsep}{os.environ['PATH']}")
    daemon = daemon_factory("--uv-pool-size", "0")

    with Session.open(notebook, daemon.socket_path) as session:
        # A directory others may write to: pixi.toml is not the user's own.
        project.chmod(0o777)
        with pytest.raises(RuntimedError) as info:
            session.start_kernel()
        assert info.value.code == "untrusted_dependencies"
        pending = session.trust(approve=False)
        assert pending["env_source"] == "pixi:toml"
        assert {(p["name"], p["channel"]) for p in pending["untrusted"]} == {
            ("numpy", "conda-forge"),  # python and ipykernel are the base, never asked
            ("rich", ""),
        }
        assert calls(log) == [], "pixi never ran"
        assert not (project / ".pixi").exists()

        project.chmod(0o755)  # the user's own tree: trusted as their code
        report = session.trust(approve=False)
        assert report["untrusted"] == [] and "a project file you keep" in report["note"]
        session.start_kernel()
        assert session.env_source == "pixi:toml"
        result = session.run("import sys, ipykernel; print(sys.prefix)", timeout=120)
        assert result.success, result.error
        prefix = project / ".pixi" / "envs" / "default"
        assert Path(result.stdout.strip()) == prefix
    installs = [argv[1:] for argv in calls(log) if argv[1:] != ["--version"]]
    assert installs == [["install", "--manifest-path", str(manifest)]]
    assert calls(log)[0] == [str(pixi), "--version"], "checked to be pixi before use"
