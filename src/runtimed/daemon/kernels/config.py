"""What a KernelSession needs to launch a kernel in one environment, and its timings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec

from runtimed.protocol.control import PooledEnv


@dataclass(frozen=True)
class KernelConfig:
    """Launch settings for one kernel.

    - ``python_path``: the env's interpreter; the kernel runs ipykernel (see ``launcher``).
    - ``cwd``: the kernel's working directory (the notebook's directory).
    - ``runtime_dir``: parent of the kernel's private 0700 dir (connection file, IPC
      sockets, kernel.log). Falls back to a temp dir when too long for a Unix socket path.
    - ``ipython_dir``: the kernel's IPYTHONDIR (one per daemon, never ``~/.ipython``).
    - ``language``: the notebook's kernel language; anything but python is refused.
    - ``provisioner``: kernelspec ``metadata.kernel_provisioner`` (None: jupyter_client's
      local provisioner).
    - ``parent_death_guard``: tie the kernel's life to this process (see ``guard.py``).
    - ``spec``: an installed kernelspec to run with its own argv and env instead of
      ipykernel in ``python_path``'s env (``python_path`` is then unused).
    """

    python_path: str
    cwd: Path
    runtime_dir: Path
    ipython_dir: Path
    language: str = "python"
    kernel_name: str = "runtimed-python"
    display_name: str = "Python 3 (runtimed)"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    provisioner: Mapping[str, Any] | None = None
    spec: KernelSpec | None = None
    parent_death_guard: bool = True
    startup_timeout: float = 60.0
    shutdown_timeout: float = 3.0
    interrupt_reply_timeout: float = 1.0
    #: How long an execute_reply may trail the kernel's idle before it is given up.
    reply_grace: float = 1.0
    poll_interval: float = 0.1

    @classmethod
    def for_env(
        cls, env: PooledEnv, *, cwd: Path, runtime_dir: Path, ipython_dir: Path, **options: Any
    ) -> KernelConfig:
        """Settings for a kernel in a pooled env (``options``: any other field)."""
        return cls(
            python_path=env.python_path,
            cwd=cwd,
            runtime_dir=runtime_dir,
            ipython_dir=ipython_dir,
            **options,
        )

    @property
    def kernelspec_metadata(self) -> dict[str, Any]:
        """Kernelspec metadata: where a provisioner is named."""
        if self.provisioner is None:
            return {}
        return {"kernel_provisioner": dict(self.provisioner)}
