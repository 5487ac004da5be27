"""Builds conda environments in-process with py-rattler: no conda, mamba or micromamba.

solve (``rattler.solve``) -> install (``rattler.install``) -> compile bytecode -> verify that
``<prefix>/bin/python -c "import ipykernel"`` works. rattler's solve and install are
coroutines running on rattler's own (Rust) runtime, so the daemon's event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runtimed.daemon.envs.build_step import BuildFailure, run_build_step
from runtimed.daemon.envs.env_record import package_hash
from runtimed.protocol.control import EnvType, PooledEnv

if TYPE_CHECKING:
    from rattler import Gateway

T = TypeVar("T")

BASE_PACKAGES = ("python", "ipykernel", "ipywidgets")
DEFAULT_CHANNELS = ("conda-forge",)

_NO_CANDIDATES = re.compile(r"No candidates were found for (.+?)\.?\s*$", re.MULTILINE)
_CANNOT_INSTALL = re.compile(r"[─└├│ ]*(\S.*?) cannot be installed", re.MULTILINE)


@dataclass(frozen=True)
class CondaEnvBuilder:
    """A conda env of ``python ipykernel ipywidgets`` (+ ``extra_packages``) from ``channels``.

    ``cache_dir`` holds ``repodata/`` (the repodata cache) and ``conda-pkgs/`` (downloaded
    and extracted packages, shared by every env: installs hard-link from it). ``config_file``
    is an optional rattler/pixi ``config.toml`` (mirrors, proxies, TLS, auth).
    """

    cache_dir: Path
    extra_packages: tuple[str, ...] = ()
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    config_file: str | None = None
    env_type: EnvType = "conda"

    @property
    def packages(self) -> list[str]:
        return list(dict.fromkeys([*BASE_PACKAGES, *self.extra_packages]))

    @property
    def package_hash(self) -> str:
        extra = json.dumps({"channels": list(self.channels), "subdir": self.subdir})
        return package_hash(self.env_type, "", self.packages, extra)

    @property
    def subdir(self) -> str:
        from rattler import Subdir

        return str(Subdir.current())

    def _platforms(self) -> list[Any]:
        from rattler import Subdir

        return [Subdir(self.subdir), Subdir("noarch")]

    def describe(self) -> str:
        return f"conda env from {', '.join(self.channels)} with {', '.join(self.packages)}"

    async def build(self, prefix: Path, env_id: str, timeout: float) -> PooledEnv:
        deadline = time.monotonic() + timeout
        records = await _bounded("solve", self._solve(deadline), deadline)
        await _bounded("install", self._install(records, prefix), deadline)
        python = prefix / "bin" / "python"
        if not python.exists():
            raise BuildFailure(
                "install",
                f"the solved env has no bin/python (is 'python' in {self.packages}?)",
                spec="python",
            )
        env = _child_env(prefix)
        site_packages = sorted(str(p) for p in prefix.glob("lib/python3*/site-packages"))
        if site_packages:
            try:
                await run_build_step(
                    "compile",
                    [str(python), "-m", "compileall", "-q", "-j", "0", *site_packages],
                    _left(deadline),
                    env,
                )
            except BuildFailure as failure:  # a stray unparsable file must not sink the env
                if failure.kind == "timeout":
                    raise
        await run_build_step(
            "verify", [str(python), "-c", "import ipykernel"], _left(deadline), env
        )
        return PooledEnv(
            env_type=self.env_type,
            venv_path=str(prefix),
            python_path=str(python),
            prewarmed_packages=self.packages,
            env_id=env_id,
            package_hash=self.package_hash,
            created_at=time.time(),
        )

    # --- steps ----------------------------------------------------------------------------

    def _config(self) -> Any:
        if not self.config_file:
            return None
        from rattler import Config

        try:
            return Config.load_from_files([self.config_file])
        except Exception as exc:
            raise BuildFailure("config", f"{self.config_file}: {exc}") from None

    def _gateway(self) -> Gateway:
        from rattler import Gateway

        cache = self.cache_dir / "repodata"
        config = self._config()
        if config is not None:
            return Gateway.from_config(config, cache_dir=cache)
        return Gateway(cache_dir=cache)

    async def _solve(self, deadline: float) -> list[Any]:
        from rattler import VirtualPackage, solve
        from rattler.exceptions import InvalidChannelError, InvalidMatchSpecError, SolverError

        gateway = self._gateway()
        virtual = await asyncio.to_thread(VirtualPackage.detect)
        try:
            return await solve(
                list(self.channels),
                self.packages,
                gateway=gateway,
                platforms=self._platforms(),
                virtual_packages=virtual,
                timeout=timedelta(seconds=_left(deadline)),
            )
        except SolverError as exc:
            message = str(exc).strip()
            spec = await self._failing_spec(message, gateway)
            summary = f"cannot satisfy {spec or 'the specs'} from {', '.join(self.channels)}"
            raise BuildFailure("solve", f"{message}\n{summary}", kind="solve", spec=spec) from None
        except InvalidMatchSpecError as exc:
            raise BuildFailure(
                "solve",
                f"invalid spec: {str(exc).strip()}",
                kind="solve",
                spec=_invalid_spec(self.packages),
            ) from None
        except InvalidChannelError as exc:
            raise BuildFailure("solve", f"invalid channel: {exc}", kind="network") from None
        except Exception as exc:  # GatewayError, FetchRepoDataError, IoError...
            raise BuildFailure(
                "solve", _describe_fetch_error(exc, self.channels), kind="network"
            ) from None

    async def _failing_spec(self, message: str, gateway: Gateway) -> str | None:
        """The configured spec the solver could not satisfy, as best we can tell."""
        match = _NO_CANDIDATES.search(message) or _CANNOT_INSTALL.search(message)
        if match:
            named = match.group(1).strip()
            return _spec_in(named, self.packages) or named
        # A spec no record in the channels matches at all is the culprit.
        from rattler import MatchSpec

        for spec in self.packages:
            try:
                found = await gateway.query(
                    list(self.channels), self._platforms(), [spec], recursive=False
                )
                matcher = MatchSpec(spec)
                if not any(matcher.matches(r) for records in found for r in records):
                    return spec
            except Exception:
                continue
        return _spec_in(message, self.packages)

    async def _install(self, records: list[Any], prefix: Path) -> None:
        from rattler import install

        try:
            await install(
                records,
                prefix,
                cache_dir=self.cache_dir / "conda-pkgs",
                show_progress=False,
                config=self._config(),
            )
        except BuildFailure:
            raise
        except Exception as exc:
            text = _first_lines(str(exc))
            kind = (
                "network"
                if re.search(r"error sending request|dns|connect", text, re.I)
                else ("build")
            )
            raise BuildFailure("install", text, kind=kind) from None


async def _bounded(step: str, work: Awaitable[T], deadline: float) -> T:
    try:
        result = await asyncio.wait_for(work, timeout=_left(deadline))
    except TimeoutError:
        raise BuildFailure(step, "timed out", kind="timeout") from None
    return result


def _spec_in(text: str, specs: list[str]) -> str | None:
    """The spec among ``specs`` whose package name ``text`` mentions; extras before base."""
    ordered = sorted(specs, key=lambda s: s in BASE_PACKAGES)
    for spec in ordered:
        name = re.split(r"[\s=<>!~\[]", spec.strip(), maxsplit=1)[0]
        if name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            return spec
    return None


def _invalid_spec(specs: list[str]) -> str | None:
    from rattler import MatchSpec

    for spec in specs:
        try:
            MatchSpec(spec, strict=True)
        except Exception:
            return spec
    return None


def _describe_fetch_error(exc: Exception, channels: tuple[str, ...]) -> str:
    """Two lines: what rattler tried (its URL), then the summary with the root cause (last,
    as status tables show the last line). The middle of rattler's cause chain adds nothing."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    cause = lines[-1].removeprefix("Caused by: ") if lines else type(exc).__name__
    summary = f"cannot fetch repodata from {', '.join(channels)}: {cause}"
    return f"{lines[0]}\n{summary}" if len(lines) > 1 else summary


def _first_lines(text: str, n: int = 6) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[:n])


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


def _child_env(prefix: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env["CONDA_PREFIX"] = str(prefix)
    return env
