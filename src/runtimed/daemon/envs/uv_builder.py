"""Builds uv virtualenvs with ipykernel, bytecode compiled."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import uv

from runtimed.daemon.envs.build_step import BuildFailure, run_build_step
from runtimed.daemon.envs.env_record import package_hash
from runtimed.protocol.control import EnvType, PooledEnv

BASE_PACKAGES = ("ipykernel", "ipywidgets")


def uv_binary() -> str:
    """The uv that ships in the `uv` PyPI package, never whatever is on PATH."""
    return uv.find_uv_bin()


def default_interpreter() -> str:
    """The interpreter the daemon runs on: envs then match the daemon's Python."""
    return getattr(sys, "_base_executable", None) or sys.executable


@dataclass(frozen=True)
class UvEnvBuilder:
    """``uv venv`` + ``uv pip install --compile-bytecode``: offline first, then online."""

    extra_packages: tuple[str, ...] = ()
    python: str = field(default_factory=default_interpreter)
    env_type: EnvType = "uv"

    @classmethod
    def create(cls, extra_packages: tuple[str, ...], python: str | None) -> UvEnvBuilder:
        """A builder for ``extra_packages`` on ``python`` (None: the daemon's own)."""
        if python:
            return cls(extra_packages=extra_packages, python=python)
        return cls(extra_packages=extra_packages)

    @property
    def packages(self) -> list[str]:
        return list(dict.fromkeys([*BASE_PACKAGES, *self.extra_packages]))

    @property
    def package_hash(self) -> str:
        return package_hash(self.env_type, self.python, self.packages)

    def describe(self) -> str:
        return f"uv env ({self.python}) with {', '.join(self.packages)}"

    async def build(self, prefix: Path, env_id: str, timeout: float) -> PooledEnv:
        deadline = time.monotonic() + timeout
        env = _child_env()
        await run_build_step(
            "venv",
            [uv_binary(), "venv", "--quiet", "--python", self.python, str(prefix)],
            timeout,
            env,
        )
        python = prefix / "bin" / "python"
        install = [
            uv_binary(),
            "pip",
            "install",
            "--quiet",
            *_bytecode_flag(),
            "--python",
            str(python),
            *self.packages,
        ]
        try:
            await run_build_step("install", [*install, "--offline"], _left(deadline), env)
        except BuildFailure as offline_failure:
            if offline_failure.kind == "timeout":
                raise
            await run_build_step("install", install, _left(deadline), env)
        return PooledEnv(
            env_type=self.env_type,
            venv_path=str(prefix),
            python_path=str(python),
            prewarmed_packages=self.packages,
            env_id=env_id,
            package_hash=self.package_hash,
            created_at=time.time(),
        )


def _bytecode_flag() -> list[str]:
    """``--compile-bytecode`` (kernels start 3x faster: PYTHONDONTWRITEBYTECODE envs never
    cache what they compile) unless ``RUNTIMED_UV_COMPILE_BYTECODE=0``: compiling all of
    site-packages costs ~8 CPU-seconds a build, which the test suite, building an env for
    nearly every daemon it starts and using few of them, cannot afford on 2 cores."""
    return [] if os.environ.get("RUNTIMED_UV_COMPILE_BYTECODE") == "0" else ["--compile-bytecode"]


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.pop("VIRTUAL_ENV", None)
    return env
