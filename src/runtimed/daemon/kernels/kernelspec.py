"""Kernelspecs built for one environment's interpreter, served to jupyter_client.

The spec is a real ``jupyter_client.kernelspec.KernelSpec``, so its ``metadata`` can name a
kernel provisioner (``{"kernel_provisioner": {"provisioner_name": ...}}``) and
jupyter_client's provisioner factory picks it up exactly as for an installed kernelspec.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

from runtimed.daemon.kernels.errors import UnsupportedLanguageError

SUPPORTED_LANGUAGES = frozenset({"python"})
GUARD_SCRIPT = Path(__file__).parent.parent / "guard.py"
LAUNCHER_SCRIPT = Path(__file__).parent / "launcher.py"


def check_language(language: str | None) -> str:
    """Normalise a notebook's kernel language; raise UnsupportedLanguageError if unknown.

    ``None``/empty means "not specified" and resolves to python.
    """
    normalized = (language or "python").strip().lower()
    if normalized in ("python3", "python2", "ipython"):
        normalized = "python"
    if normalized not in SUPPORTED_LANGUAGES:
        raise UnsupportedLanguageError(language or "")
    return normalized


#: IPython keeps its input history in memory (the daemon keeps the durable history). On
#: disk every kernel shares the IPYTHONDIR's history.sqlite, and a commit there (an fsync,
#: slow while another kernel's 200 MB output is being written) held every other kernel's
#: next cell up by 0.6-2 s.
IPYTHON_OPTIONS = ("--HistoryManager.hist_file=:memory:",)


def kernel_argv(python_path: str, guard_parent_pid: int | None) -> list[str]:
    """``<env python> <launcher.py> -f {connection_file}``, behind the death guard.

    :mod:`launcher` is ``ipykernel_launcher`` minus the debugger's start-up cost. With
    ``guard_parent_pid`` the same interpreter first runs :mod:`guard` (by path, the env
    does not have runtimed installed), which ties the kernel's life to that pid.
    """
    kernel = [python_path, str(LAUNCHER_SCRIPT), "-f", "{connection_file}", *IPYTHON_OPTIONS]
    if guard_parent_pid is None:
        return kernel
    guard = [python_path, "-I", "-S", str(GUARD_SCRIPT), str(guard_parent_pid), "--"]
    return [*guard, *kernel]


def installed_kernelspec(spec: KernelSpec, guard_parent_pid: int | None) -> KernelSpec:
    """An installed kernelspec as it runs here: its own argv, behind the death guard (run
    by the daemon's interpreter: the kernel's env may have no Python at all)."""
    argv = list(spec.argv)
    if guard_parent_pid is not None:
        guard = [sys.executable, "-I", "-S", str(GUARD_SCRIPT), str(guard_parent_pid), "--"]
        argv = [*guard, *argv]
    return KernelSpec(
        argv=argv,
        display_name=spec.display_name,
        language=spec.language,
        interrupt_mode=spec.interrupt_mode,
        env=dict(spec.env or {}),
        metadata=dict(spec.metadata or {}),
        resource_dir=spec.resource_dir,
    )


def python_kernelspec(
    python_path: str,
    *,
    display_name: str = "Python 3 (runtimed)",
    guard_parent_pid: int | None = None,
    env: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> KernelSpec:
    """A kernelspec for an ipykernel in the env that owns ``python_path``.

    ``interrupt_mode`` is ``message``: interrupts go as ``interrupt_request`` on the control
    channel (KernelSession falls back to SIGINT when the kernel does not answer).
    """
    return KernelSpec(
        argv=kernel_argv(python_path, guard_parent_pid),
        display_name=display_name,
        language="python",
        interrupt_mode="message",
        env=dict(env or {}),
        metadata=dict(metadata or {}),
        resource_dir="",
    )


def installed_env_variables(ipython_dir: Path) -> dict[str, str]:
    """An installed kernelspec's environment: the daemon's (the spec's ``env`` is added by
    jupyter_client), minus the daemon's own virtualenv, plus its own IPYTHONDIR."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONHOME", None)
    env["IPYTHONDIR"] = str(ipython_dir)
    return env


def env_variables(python_path: str, ipython_dir: Path) -> dict[str, str]:
    """The kernel's environment: the daemon's, with the env activated and its own IPYTHONDIR."""
    venv = Path(python_path).parent.parent
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", os.defpath)])
    env["IPYTHONDIR"] = str(ipython_dir)
    env.pop("PYTHONHOME", None)
    return env


class SingleKernelSpecManager(KernelSpecManager):  # type: ignore[misc]
    """A KernelSpecManager that knows exactly one in-memory spec (no disk lookups)."""

    def __init__(self, name: str, spec: KernelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._name = name
        self._spec = spec

    def find_kernel_specs(self) -> dict[str, str]:
        """Only our spec."""
        return {self._name: self._spec.resource_dir}

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        """Our spec, or NoSuchKernel."""
        if kernel_name != self._name:
            raise NoSuchKernel(kernel_name)
        return self._spec
