"""EnvResolver: env_source -> a ready env, with real pools and real uv / rattler builds.

Builds are the slow part (a few seconds each), so tests that only need "some cached env"
share one module-wide inline dir and project; tests that count builds get their own dir.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conda_channel import build_channel
from runtimed.daemon.envs import EnvPool, PoolSettings, UvEnvBuilder
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder
from runtimed.daemon.envs.env_record import READY_MARKER
from runtimed.daemon.envs.resolver import (
    ENV_SOURCES,
    EnvResolver,
    ResolvedEnv,
    find_pyproject,
)
from runtimed.daemon.trust.trust_gate import TrustGate
from runtimed.errors import RuntimedError
from runtimed.protocol.control import PooledEnv

pytestmark = pytest.mark.daemon

SIX = {"runt": {"uv": {"dependencies": ["six"]}}}


def run_python(resolved: ResolvedEnv, code: str) -> str:
    out = subprocess.run(
        [resolved.env.python_path, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


async def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def make_resolver(
    root: Path,
    pools: dict[str, EnvPool] | None = None,
    default: str = "uv",
    channels: list[str] | None = None,
    take_timeout: float = 120.0,
) -> EnvResolver:
    return EnvResolver(
        pools or {},
        root / "inline-envs",
        root / "cache",
        lambda: default,
        lambda: list(channels or []),
        take_timeout=take_timeout,
        trust=TrustGate.trusting_everything(),  # the gate has its own tests (test_trust*)
    )


def write_project(directory: Path, deps: list[str], git: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    quoted = ", ".join(f'"{d}"' for d in deps)
    body = f'[project]\nname = "demo"\nversion = "0"\ndependencies = [{quoted}]\n'
    (directory / "pyproject.toml").write_text(body)
    if git:
        (directory / ".git").mkdir(exist_ok=True)
    return directory / "pyproject.toml"


@dataclass
class Shared:
    """A module-wide cache root and a project (pyproject with six, a .git) inside it."""

    root: Path
    project: Path

    def notebook(self, *parts: str) -> str:
        return str(self.project.joinpath(*parts, "nb.ipynb"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    root = tmp_path_factory.mktemp("resolver-shared")
    project = root / "project"
    write_project(project, ["six"])
    return Shared(root, project)


@pytest.fixture
async def uv_pool(tmp_path: Path) -> AsyncIterator[EnvPool]:
    pool = EnvPool(UvEnvBuilder(), tmp_path / "envs", PoolSettings(target=1))
    await pool.start()
    yield pool
    await pool.close()


# --- prewarmed -----------------------------------------------------------------------------


async def test_prewarmed_takes_from_the_pool_and_release_deletes(
    tmp_path: Path, uv_pool: EnvPool
) -> None:
    resolver = make_resolver(tmp_path, {"uv": uv_pool})
    resolved = await resolver.resolve("uv:prewarmed", {"kernelspec": {"name": "python3"}}, None)
    assert resolved.env_source == "uv:prewarmed" and resolved.owned
    prefix = Path(resolved.env.venv_path)
    assert prefix.parent == uv_pool.envs_dir
    assert run_python(resolved, "import ipykernel, sys; print(sys.prefix)") == str(prefix)
    await resolver.release(resolved)
    assert not prefix.exists()
    await resolver.release(resolved)  # idempotent


async def test_release_never_deletes_outside_a_pool(tmp_path: Path) -> None:
    pool = EnvPool(UvEnvBuilder(), tmp_path / "envs", PoolSettings(target=0))
    resolver = make_resolver(tmp_path, {"uv": pool})
    stranger = tmp_path / "not-a-pool-env"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("x")
    fake = ResolvedEnv(
        env=PooledEnv(
            env_type="uv",
            venv_path=str(stranger),
            python_path=str(stranger / "bin" / "python"),
            prewarmed_packages=["ipykernel"],
        ),
        env_source="uv:prewarmed",
        owned=True,
    )
    await resolver.release(fake)
    assert (stranger / "keep.txt").exists()


async def test_empty_pool_times_out_with_its_error(tmp_path: Path) -> None:
    broken = UvEnvBuilder(python=str(tmp_path / "no-such-python"))
    pool = EnvPool(broken, tmp_path / "envs", PoolSettings(target=1, backoff_base_secs=60))
    await pool.start()
    try:
        await wait_for(lambda: pool.status().error is not None, 60, "a pool build error")
        resolver = make_resolver(tmp_path, {"uv": pool}, take_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(RuntimedError) as info:
            await resolver.resolve("uv:prewarmed", {}, None)
        assert time.monotonic() - started < 5
        message = info.value.message
        assert "cannot build envs" in message and "runt pool status" in message
        assert "'venv'" in message and "no-such-python" in message
        assert info.value.code == "pool_failing"
        with pytest.raises(RuntimedError, match="no conda pool"):
            await resolver.resolve("conda:prewarmed", {}, None)
    finally:
        await pool.close()


# --- uv:inline -----------------------------------------------------------------------------


async def test_inline_builds_once_then_reuses_also_after_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIMED_UV_COMPILE_BYTECODE", "1")  # the suite turns it off
    resolver = make_resolver(tmp_path)
    first, second, third = await asyncio.gather(
        *(resolver.resolve("uv:inline", SIX, None) for _ in range(3))
    )
    assert resolver.builds == 1, "concurrent resolves of the same deps build once"
    assert first == second == third
    assert first.env_source == "uv:inline" and not first.owned
    prefix = Path(first.env.venv_path)
    assert prefix.parent == tmp_path / "inline-envs"
    assert prefix.name.startswith("uv-") and len(prefix.name) == len("uv-") + 16
    assert run_python(first, "import six, ipykernel, ipywidgets; print(six.__name__)") == "six"
    assert list(prefix.glob("lib/python3*/site-packages/__pycache__/six*.pyc"))
    marker = (prefix / READY_MARKER).read_bytes()

    started = time.monotonic()
    again = await resolver.resolve("uv:inline", {"runt": {"uv": {"dependencies": [" six "]}}}, "")
    assert time.monotonic() - started < 1.0
    assert again.env == first.env and resolver.builds == 1

    restarted = make_resolver(tmp_path)
    started = time.monotonic()
    after_restart = await restarted.resolve("uv:inline", SIX, None)
    assert time.monotonic() - started < 2.0
    assert after_restart.env == first.env and restarted.builds == 0
    assert (prefix / READY_MARKER).read_bytes() == marker

    await restarted.release(after_restart)
    assert prefix.exists(), "cached envs are shared: release keeps them"


async def test_half_built_inline_env_is_removed_and_rebuilt(tmp_path: Path) -> None:
    builder = UvEnvBuilder.create(("six",), None)
    prefix = tmp_path / "inline-envs" / f"uv-{builder.package_hash}"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "leftover.txt").write_text("half-built")
    resolver = make_resolver(tmp_path)
    resolved = await resolver.resolve("uv:inline", SIX, None)
    assert Path(resolved.env.venv_path) == prefix and resolver.builds == 1
    assert not (prefix / "leftover.txt").exists()
    assert (prefix / READY_MARKER).exists()
    assert run_python(resolved, "import six; print('ok')") == "ok"


async def test_inline_missing_dependency_is_a_clear_error(tmp_path: Path) -> None:
    resolver = make_resolver(tmp_path)
    missing = "runtimed-no-such-package-4f1c2a"
    metadata = {"runt": {"uv": {"dependencies": [missing]}}}
    with pytest.raises(RuntimedError) as info:
        await resolver.resolve("uv:inline", metadata, None)
    message = info.value.message
    assert info.value.code == "env_build_failed"
    assert "uv:inline" in message and "'install'" in message and missing in message
    assert list((tmp_path / "inline-envs").iterdir()) == [], "failed builds leave nothing"


@pytest.mark.parametrize(
    ("deps", "bad"),
    [
        ("six", "must be a list"),
        (["six", 3], "must be a list of strings"),
        (["--index-url=http://evil.invalid/simple"], "is not a package spec"),
        (["-e", "/etc"], "is not a package spec"),
        (["six\n--pre"], "is not a package spec"),
        ([""], "is not a package spec"),
    ],
)
async def test_inline_rejects_malformed_dependencies(tmp_path: Path, deps: Any, bad: str) -> None:
    resolver = make_resolver(tmp_path)
    with pytest.raises(RuntimedError, match=bad) as info:
        await resolver.resolve("uv:inline", {"runt": {"uv": {"dependencies": deps}}}, None)
    assert info.value.code == "invalid_metadata"
    assert resolver.builds == 0 and not (tmp_path / "inline-envs").exists()


async def test_unknown_env_source_lists_the_valid_ones(tmp_path: Path) -> None:
    resolver = make_resolver(tmp_path)
    with pytest.raises(RuntimedError) as info:
        await resolver.resolve("pip:whatever", {}, None)
    assert info.value.code == "invalid_env_source"
    for source in ENV_SOURCES:
        assert source in info.value.message


# --- uv:pyproject and the walk up ----------------------------------------------------------


def test_find_pyproject_walks_up_and_stops_at_git_or_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    outer = write_project(tmp_path / "outer", [], git=False)
    repo = tmp_path / "outer" / "repo"
    (repo / ".git").mkdir(parents=True)
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    assert find_pyproject(deep) is None, "a .git dir ends the search"
    assert find_pyproject(tmp_path / "outer") == outer
    repo_project = write_project(repo, [])
    assert find_pyproject(deep) == repo_project, "the .git dir itself is checked"
    (repo / "a" / "pyproject.toml").write_text("[project]\n")
    assert find_pyproject(deep) == repo / "a" / "pyproject.toml", "nearest wins"

    home = tmp_path / "home"
    (home / "notebooks").mkdir(parents=True)
    write_project(tmp_path, [], git=False)
    assert find_pyproject(home / "notebooks") is None, "$HOME ends the search"
    home_project = write_project(home, [], git=False)
    assert find_pyproject(home / "notebooks") == home_project, "$HOME itself is checked"


async def test_pyproject_found_in_a_parent_dir(shared: Shared) -> None:
    resolver = make_resolver(shared.root)
    resolved = await resolver.resolve("uv:pyproject", {}, shared.notebook("src", "deep"))
    assert resolved.env_source == "uv:pyproject" and not resolved.owned
    prefix = Path(resolved.env.venv_path)
    assert prefix.parent == shared.root / "inline-envs" and prefix.name.startswith("pyproject-")
    assert run_python(resolved, "import six, ipykernel; print('ok')") == "ok"


async def test_pyproject_none_found_or_no_path_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    resolver = make_resolver(tmp_path)
    (tmp_path / "nb").mkdir()
    with pytest.raises(RuntimedError, match=r"no pyproject\.toml found") as info:
        await resolver.resolve("uv:pyproject", {}, str(tmp_path / "nb" / "a.ipynb"))
    assert info.value.code == "no_pyproject"
    with pytest.raises(RuntimedError, match="needs the notebook's path"):
        await resolver.resolve("uv:pyproject", {}, None)


async def test_pyproject_invalid_toml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project\n")
    resolver = make_resolver(tmp_path)
    with pytest.raises(RuntimedError, match=r"cannot read .*pyproject\.toml"):
        await resolver.resolve("uv:pyproject", {}, str(tmp_path / "nb.ipynb"))


# --- auto ----------------------------------------------------------------------------------


async def test_auto_prefers_inline_uv_then_conda_then_pyproject(shared: Shared) -> None:
    resolver = make_resolver(shared.root, channels=["file:///nonexistent-channel"])
    both = {"runt": {"uv": {"dependencies": ["six"]}, "conda": {"dependencies": ["numpy"]}}}
    inline = await resolver.resolve("auto", both, shared.notebook())
    assert inline.env_source == "uv:inline" and not inline.owned

    conda_only = {"runt": {"conda": {"dependencies": ["runtimed-not-in-channel"]}}}
    with pytest.raises(RuntimedError, match="conda:inline"):
        await resolver.resolve("auto", conda_only, shared.notebook())

    no_deps = {"runt": {"uv": {"dependencies": []}}, "kernelspec": {"name": "python3"}}
    project = await resolver.resolve("auto", no_deps, shared.notebook("sub"))
    assert project.env_source == "uv:pyproject"
    explicit = await resolver.resolve("uv:pyproject", {}, shared.notebook())
    assert explicit.env == project.env


async def test_auto_without_deps_or_project_uses_the_default_pool(tmp_path: Path) -> None:
    """Routing only: each pool is absent, so the error names the pool auto picked."""
    notebook = str(tmp_path / "nb.ipynb")
    (tmp_path / ".git").mkdir()
    for default in ("uv", "conda"):
        resolver = make_resolver(tmp_path, default=default)
        with pytest.raises(RuntimedError, match=f"no {default} pool"):
            await resolver.resolve("auto", {}, notebook)


# --- conda ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_channel(
        tmp_path_factory.mktemp("conda-channel"),
        extra=[("conda-extra", "1.0", []), ("conda-other", "1.0", [])],
    )


async def test_conda_inline_builds_from_metadata_and_is_cached(
    tmp_path: Path, channel: str
) -> None:
    resolver = make_resolver(tmp_path, channels=[channel])
    metadata = {"runt": {"conda": {"dependencies": ["conda-extra"]}}}
    resolved = await resolver.resolve("conda:inline", metadata, None)
    assert resolved.env_source == "conda:inline" and not resolved.owned
    prefix = Path(resolved.env.venv_path)
    assert prefix.parent == tmp_path / "inline-envs" and prefix.name.startswith("conda-")
    assert resolved.env.env_type == "conda"
    assert run_python(resolved, "import conda_extra, ipykernel; print(conda_extra.OK)") == "True"
    again = await make_resolver(tmp_path, channels=[channel]).resolve(
        "auto", metadata, str(tmp_path / "nb.ipynb")
    )
    assert again.env == resolved.env and again.env_source == "conda:inline"
    assert resolver.builds == 1

    # Channels from the metadata win over the configured ones.
    explicit = {"runt": {"conda": {"dependencies": ["conda-other"], "channels": [channel]}}}
    other = await make_resolver(tmp_path, channels=["file:///nonexistent"]).resolve(
        "conda:inline", explicit, None
    )
    assert run_python(other, "import conda_other; print('ok')") == "ok"
    assert other.env.venv_path != resolved.env.venv_path


async def test_conda_inline_unknown_spec_is_a_clear_error(tmp_path: Path, channel: str) -> None:
    resolver = make_resolver(tmp_path, channels=[channel])
    metadata = {"runt": {"conda": {"dependencies": ["runtimed-not-in-channel"]}}}
    with pytest.raises(RuntimedError) as info:
        await resolver.resolve("conda:inline", metadata, None)
    message = info.value.message
    assert "'solve'" in message and "runtimed-not-in-channel" in message
    assert list((tmp_path / "inline-envs").iterdir()) == []


async def test_conda_prewarmed_and_auto_default_conda(tmp_path: Path, channel: str) -> None:
    builder = CondaEnvBuilder(tmp_path / "cache", (), (channel,))
    pool = EnvPool(builder, tmp_path / "envs", PoolSettings(target=2))
    await pool.start()
    try:
        resolver = make_resolver(tmp_path, {"conda": pool}, default="conda")
        explicit = await resolver.resolve("conda:prewarmed", {}, None)
        auto = await resolver.resolve("auto", {}, None)
        for resolved in (explicit, auto):
            assert resolved.env_source == "conda:prewarmed" and resolved.owned
            assert resolved.env.env_type == "conda"
            assert run_python(resolved, "import ipykernel; print('ok')") == "ok"
            await resolver.release(resolved)
            assert not Path(resolved.env.venv_path).exists()
    finally:
        await pool.close()
