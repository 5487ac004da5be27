"""A notebook's own Python dependencies: ``metadata.runt.uv.dependencies``.

The daemon builds an env from them (``uv:inline``, cached by their hash) when the kernel
starts with ``env_source`` ``auto`` or ``uv:inline``. Specs are checked here the way the
daemon checks them, so a bad one is refused before anything is written.
"""

from __future__ import annotations

import re
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

METADATA_KEY = "runt"
MAX_SPECS = 200
MAX_SPEC_LEN = 200

# A PEP 508 requirement starts with a distribution name; extras, a version or a marker
# may follow. Options for uv (``--index-url ...``) are never specs.
_NAME = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[|[<>=!~;@ ]|$)")


def package_name(spec: str) -> str:
    """The normalised distribution name of a spec (PEP 503): ``Foo_Bar>=1`` -> ``foo-bar``."""
    match = _NAME.match(spec)
    if match is None:
        raise ToolError(
            f"{spec!r} is not a package spec; use a PEP 508 requirement such as "
            "'pandas', 'pandas>=2.2' or 'requests[socks]'"
        )
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def check_specs(specs: list[str]) -> list[str]:
    """Stripped, checked specs; raises ToolError naming the first bad one."""
    if not specs:
        raise ToolError("give at least one package spec, e.g. 'pandas>=2.2'")
    checked = []
    for raw in specs:
        spec = raw.strip()
        if not spec or len(spec) > MAX_SPEC_LEN or any(ord(c) < 32 for c in spec):
            raise ToolError(f"{raw!r} is not a package spec (empty, too long or control chars)")
        package_name(spec)
        checked.append(spec)
    return checked


def current(metadata_runt: Any) -> list[str]:
    """The dependency list from the notebook's ``runt`` metadata (empty when absent)."""
    uv = metadata_runt.get("uv") if isinstance(metadata_runt, dict) else None
    deps = uv.get("dependencies") if isinstance(uv, dict) else None
    return [str(d) for d in deps] if isinstance(deps, list) else []


def with_dependencies(metadata_runt: Any, deps: list[str]) -> dict[str, Any]:
    """A copy of the ``runt`` metadata with ``uv.dependencies`` set to ``deps``."""
    runt = dict(metadata_runt) if isinstance(metadata_runt, dict) else {}
    section = runt.get("uv")
    uv = dict(section) if isinstance(section, dict) else {}
    uv["dependencies"] = list(deps)
    runt["uv"] = uv
    return runt


def add(deps: list[str], specs: list[str]) -> list[str]:
    """``deps`` with ``specs`` added; a spec for a package already listed replaces it."""
    names = {package_name(s): s for s in specs}
    kept = [d for d in deps if _name_or_self(d) not in names]
    result = kept + list(names.values())
    if len(result) > MAX_SPECS:
        raise ToolError(f"a notebook can list at most {MAX_SPECS} dependencies")
    return result


def remove(deps: list[str], packages: list[str]) -> tuple[list[str], list[str]]:
    """``deps`` without ``packages`` (by name, any version); and the names not listed."""
    names = {package_name(p) for p in packages}
    listed = {_name_or_self(d) for d in deps}
    return [d for d in deps if _name_or_self(d) not in names], sorted(names - listed)


def _name_or_self(spec: str) -> str:
    try:
        return package_name(spec)
    except ToolError:
        return spec
