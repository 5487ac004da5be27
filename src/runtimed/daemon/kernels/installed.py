"""Which kernel a room runs: ipykernel in a runtimed env, or an installed kernelspec.

``python3`` (and its aliases) is ipykernel in a pooled, inline or project env: that is
what the pools prewarm. Any other name is a kernelspec that jupyter_client's
KernelSpecManager finds (``JUPYTER_PATH``, the user's and the system's kernel dirs) and
runs with its own argv and env: bash_kernel, ``deno jupyter``, IRkernel, a Python
kernelspec bound to one interpreter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from runtimed.daemon.kernels.errors import KernelError

log = logging.getLogger(__name__)

PYTHON_NAMES = frozenset({"python", "python3", "ipython", "ipykernel"})


@dataclass(frozen=True)
class KernelChoice:
    """A room's kernel: ``spec`` None means ipykernel in a runtimed env."""

    name: str
    language: str
    display_name: str
    spec: KernelSpec | None = None

    @property
    def is_env_python(self) -> bool:
        """ipykernel in an env the daemon provides (pooled, inline, project)."""
        return self.spec is None

    def notebook_kernelspec(self) -> dict[str, str]:
        """The notebook's ``metadata.kernelspec`` for this kernel."""
        return {"name": self.name, "display_name": self.display_name, "language": self.language}


PYTHON = KernelChoice("python3", "python", "Python 3 (ipykernel)")


class UnknownKernelError(KernelError):
    """No kernelspec of that name is installed; the message lists those that are."""

    def __init__(self, name: str, installed: list[str]) -> None:
        super().__init__(
            f"no kernel named {name!r}; installed kernelspecs: {_listing(installed)}",
            code="unknown_kernel",
        )
        self.name = name


def installed_kernelspecs() -> dict[str, KernelSpec]:
    """Every kernelspec jupyter_client finds, by name (a broken one is skipped)."""
    manager = KernelSpecManager()
    specs: dict[str, KernelSpec] = {}
    try:
        names = sorted(manager.find_kernel_specs())
    except Exception as exc:  # a broken kernel dir must not hide the others
        log.warning("cannot list kernelspecs: %s", exc)
        return specs
    for name in names:
        try:
            specs[name] = manager.get_kernel_spec(name)
        except Exception as exc:  # NoSuchKernel, or a broken kernel.json
            log.warning("skipping kernelspec %s: %s", name, exc)
    return specs


def choose_kernel(name: str) -> KernelChoice:
    """The kernel ``name`` means; UnknownKernelError lists what is installed."""
    if name.strip().lower() in PYTHON_NAMES:
        return PYTHON
    specs = installed_kernelspecs()
    spec = specs.get(name)
    if spec is None:
        raise UnknownKernelError(name, sorted(specs))
    return KernelChoice(
        name=name,
        language=str(spec.language or name).lower(),
        display_name=str(spec.display_name or name),
        spec=spec,
    )


def choose_for_notebook(requested: str, metadata: dict[str, Any]) -> KernelChoice:
    """What a notebook runs. An explicit non-default ``requested`` kernel wins; else
    the notebook's own ``kernelspec`` (by name, then any kernelspec of its language);
    else python3."""
    if requested.strip().lower() not in PYTHON_NAMES:
        return choose_kernel(requested)
    spec = _mapping(metadata.get("kernelspec"))
    info = _mapping(metadata.get("language_info"))
    name = str(spec.get("name") or "")
    language = str(spec.get("language") or info.get("name") or "python").strip().lower()
    if language in PYTHON_NAMES:
        return PYTHON
    installed = installed_kernelspecs()
    if name in installed:
        return choose_kernel(name)
    for other, found in installed.items():
        if str(found.language or "").lower() == language:
            return choose_kernel(other)
    raise KernelError(
        f"the notebook needs a {language!r} kernel ({name or 'no kernelspec name'}), and none "
        f"is installed; installed kernelspecs: {_listing(installed)}",
        code="unsupported_language",
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _listing(names: Any) -> str:
    return ", ".join(["python3", *(n for n in sorted(names) if n not in PYTHON_NAMES)])
