"""The env sources of issue 28: the `auto` order, uv:pep723, conda:env_yml (local
channel, pip section through uv) and pixi:toml's missing-binary error."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conda_channel import build_channel
from runtimed.daemon.envs.env_yml import read_environment_yml
from runtimed.daemon.envs.pep723 import script_metadata
from runtimed.daemon.envs.resolver import EnvResolver, ResolvedEnv
from runtimed.daemon.envs.sources import NotebookFacts, choose
from runtimed.daemon.trust.trust_gate import TrustGate
from runtimed.errors import RuntimedError

SCRIPT = '# /// script\n# requires-python = ">=3.8"\n# dependencies = ["six"]\n# ///\nimport six\n'


def resolver(root: Path, channels: list[str] | None = None) -> EnvResolver:
    return EnvResolver(
        {}, root / "inline-envs", root / "cache", lambda: "uv", lambda: list(channels or []),
        trust=TrustGate.trusting_everything(),  # the gate: test_trust*.py
    )  # fmt: skip


def python(resolved: ResolvedEnv, code: str) -> str:
    argv = [resolved.env.python_path, "-c", code]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def source(facts: NotebookFacts) -> str:
    return choose(facts, "uv").source


def test_auto_order_metadata_then_nearest_project_then_pep723_then_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    repo = tmp_path / "repo"
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    (repo / ".git").mkdir()
    nb = str(deep / "nb.ipynb")
    meta: dict[str, Any] = {"runt": {"uv": {"dependencies": ["six"]}}}
    assert source(NotebookFacts({}, nb)) == "uv:prewarmed"
    assert source(NotebookFacts({}, nb, SCRIPT)) == "uv:pep723"
    (repo / "environment.yml").write_text("channels: [x]\ndependencies: [six]\n")
    assert source(NotebookFacts({}, nb, SCRIPT)) == "conda:env_yml", "a project beats pep723"
    (repo / "pixi.toml").write_text("[workspace]\nchannels = []\n")
    assert source(NotebookFacts({}, nb)) == "pixi:toml", "pixi.toml before environment.yml"
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert source(NotebookFacts({}, nb)) == "uv:pyproject", "pyproject first in one dir"
    (repo / "a" / "environment.yml").write_text("dependencies: []\n")
    choice = choose(NotebookFacts({}, nb), "uv")
    assert (
        choice.source == "conda:env_yml" and choice.project_file == repo / "a" / "environment.yml"
    )
    assert source(NotebookFacts(meta, nb, SCRIPT)) == "uv:inline", "metadata first"
    conda = {"runt": {"conda": {"dependencies": ["six"]}}}
    assert source(NotebookFacts(conda, nb)) == "conda:inline"
    assert [s.source for s in choice.steps] == [
        "uv:inline", "conda:inline", "conda:env_yml", "uv:pep723", "uv:prewarmed",
    ]  # fmt: skip
    # Above the repository root nothing counts.
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    for name in ("pyproject.toml", "pixi.toml", "environment.yml"):
        (repo / name).unlink()
    (repo / "a" / "environment.yml").unlink()
    assert source(NotebookFacts({}, nb)) == "uv:prewarmed"


def test_pep723_blocks() -> None:
    parsed = script_metadata("x = 1\n" + SCRIPT)
    assert parsed is not None and parsed.dependencies == ("six",)
    assert parsed.requires_python == ">=3.8"
    assert script_metadata("# /// other\n# a = 1\n# ///\n") is None
    assert script_metadata("print(1)") is None
    with pytest.raises(RuntimedError, match="not valid TOML"):
        script_metadata("# /// script\n# dependencies = [\n# ///\n")
    with pytest.raises(RuntimedError, match="not a package spec"):
        script_metadata('# /// script\n# dependencies = ["--index-url=x"]\n# ///\n')


def test_environment_yml_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_text("channels: [c1]\ndependencies:\n  - a >=1\n  - pip\n  - pip: [six]\n")
    yml = read_environment_yml(path)
    assert yml.channels == ("c1",) and yml.conda == ("a >=1",) and yml.pip == ("six",)
    path.write_text("dependencies: [{evil: 1}]\n")
    with pytest.raises(RuntimedError) as info:
        read_environment_yml(path)
    assert info.value.code == "invalid_environment_yml"


@pytest.mark.daemon
async def test_pep723_builds_the_inline_env_of_its_deps(tmp_path: Path) -> None:
    r = resolver(tmp_path)
    resolved = await r.resolve("auto", {}, None, SCRIPT)
    assert resolved.env_source == "uv:pep723" and not resolved.owned
    assert python(resolved, "import six, ipykernel; print('ok')") == "ok"
    inline = await r.resolve("uv:inline", {"runt": {"uv": {"dependencies": ["six"]}}}, None)
    assert inline.env.venv_path == resolved.env.venv_path and r.builds == 1, "one hash, one env"
    too_new = SCRIPT.replace(">=3.8", ">=4")
    with pytest.raises(RuntimedError, match="requires Python >=4"):
        await r.resolve("uv:pep723", {}, None, too_new)
    with pytest.raises(RuntimedError) as info:
        await r.resolve("uv:pep723", {}, None, "print(1)")
    assert info.value.code == "no_pep723"


@pytest.mark.daemon
async def test_environment_yml_on_a_local_channel_with_pip(tmp_path: Path) -> None:
    extra = [("conda-extra", "1.0", [])]
    channel = await asyncio.to_thread(build_channel, tmp_path / "channel", extra)
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "environment.yml").write_text(
        f"channels: [{channel}]\ndependencies:\n  - conda-extra\n  - pip:\n    - six\n"
    )
    r = resolver(tmp_path)
    resolved = await r.resolve("auto", {}, str(project / "nb.ipynb"))
    assert resolved.env_source == "conda:env_yml" and resolved.env.env_type == "conda"
    assert Path(resolved.env.venv_path).name.startswith("envyml-")
    code = "import conda_extra, six, ipykernel; print(conda_extra.OK, six.__name__)"
    assert python(resolved, code) == "True six"
    again = await resolver(tmp_path).resolve("conda:env_yml", {}, str(project / "nb.ipynb"))
    assert again.env == resolved.env, "cached by what the file says"


@pytest.mark.daemon
async def test_pixi_without_the_pixi_binary_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "pixi.toml").write_text('[workspace]\nchannels = ["conda-forge"]\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    nb = str(project / "nb.ipynb")
    with pytest.raises(RuntimedError) as info:
        await resolver(tmp_path).resolve("auto", {}, nb)
    assert info.value.code == "pixi_missing" and "https://pixi.sh" in info.value.message
    # The `pixi` of PyPI (a Pixiv downloader) is not the package manager.
    impostor = bin_dir / "pixi"
    impostor.write_text("#!/bin/sh\necho 'usage: pixi [-h] [--user USER] ...'\n")
    impostor.chmod(impostor.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(RuntimedError, match="is not the pixi package manager") as info:
        await resolver(tmp_path).resolve("pixi:toml", {}, nb)
    assert info.value.code == "pixi_missing"
    assert sorted(os.listdir(project)) == [".git", "pixi.toml"]
