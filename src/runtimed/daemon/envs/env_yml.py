"""``conda:env_yml``: a conda env from the nearest ``environment.yml``.

``channels`` and the conda ``dependencies`` are solved and installed with py-rattler (the
``CondaEnvBuilder``); the ``pip:`` section then goes in with ``uv pip install`` into the
env's Python, offline first. Cached under ``inline-envs/`` like inline envs, keyed by
everything the file says.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from runtimed.daemon.envs.build_step import BuildFailure, run_build_step
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder
from runtimed.daemon.envs.dependency_specs import check_specs
from runtimed.daemon.envs.env_record import package_hash
from runtimed.daemon.envs.uv_builder import uv_binary
from runtimed.errors import RuntimedError
from runtimed.protocol.control import EnvType, PooledEnv

CODE = "invalid_environment_yml"


@dataclass(frozen=True)
class EnvironmentYml:
    path: Path
    channels: tuple[str, ...]
    conda: tuple[str, ...]
    pip: tuple[str, ...]


def read_environment_yml(path: Path) -> EnvironmentYml:
    """The channels, conda specs and pip specs of ``path``, checked."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuntimedError(f"cannot read {path}: {exc}", code=CODE) from None
    if not isinstance(data, dict):
        raise RuntimedError(f"{path}: not a mapping of channels and dependencies", CODE)
    channels = check_specs(data.get("channels") or [], f"{path}: channels", CODE)
    conda: list[Any] = []
    pip: list[str] = []
    entries = data.get("dependencies") or []
    if not isinstance(entries, list):
        raise RuntimedError(f"{path}: dependencies must be a list", CODE)
    for entry in entries:
        if isinstance(entry, dict) and set(entry) == {"pip"}:
            pip.extend(check_specs(entry["pip"] or [], f"{path}: pip", CODE))
        else:
            conda.append(entry)
    specs = check_specs(conda, f"{path}: dependencies", CODE)
    return EnvironmentYml(path, tuple(channels), tuple(s for s in specs if s != "pip"), tuple(pip))


@dataclass(frozen=True)
class EnvYmlBuilder:
    """``conda`` (the conda part) + ``uv pip install`` of the pip section."""

    conda: CondaEnvBuilder
    pip: tuple[str, ...] = ()
    env_type: EnvType = "conda"

    @property
    def packages(self) -> list[str]:
        return [*self.conda.packages, *(f"pip:{p}" for p in self.pip)]

    @property
    def package_hash(self) -> str:
        extra = json.dumps({"channels": list(self.conda.channels), "subdir": self.conda.subdir})
        return package_hash(self.env_type, "env_yml", self.packages, extra)

    def describe(self) -> str:
        pip = f" + pip: {', '.join(self.pip)}" if self.pip else ""
        return self.conda.describe() + pip

    async def build(self, prefix: Path, env_id: str, timeout: float) -> PooledEnv:
        deadline = time.monotonic() + timeout
        env = await self.conda.build(prefix, env_id, timeout)
        if self.pip:
            install = [
                uv_binary(), "pip", "install", "--quiet", "--compile-bytecode",
                "--python", env.python_path, *self.pip,
            ]  # fmt: skip
            left = max(deadline - time.monotonic(), 0.01)
            try:
                await run_build_step("pip", [*install, "--offline"], left, _uv_env())
            except BuildFailure as offline:
                if offline.kind == "timeout":
                    raise
                left = max(deadline - time.monotonic(), 0.01)
                await run_build_step("pip", install, left, _uv_env())
        return msgspec.structs.replace(
            env, prewarmed_packages=self.packages, package_hash=self.package_hash
        )


def _uv_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env
