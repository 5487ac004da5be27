"""PEP 723 inline script metadata in a notebook's first code cell.

```
# /// script
# requires-python = ">=3.11"
# dependencies = ["six"]
# ///
```

builds a uv env like inline dependencies do (same hashing, same ``inline-envs/`` dir and
collection). The block is read with the PEP's reference regex; its TOML must parse.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass

from runtimed.daemon.envs.dependency_specs import check_specs
from runtimed.errors import RuntimedError

_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
WHERE = "the first code cell's `# /// script` block"


@dataclass(frozen=True)
class ScriptMetadata:
    dependencies: tuple[str, ...]
    requires_python: str | None


def script_metadata(source: str | None) -> ScriptMetadata | None:
    """The ``script`` block of ``source``; None when there is none."""
    if not source or "# /// script" not in source:
        return None
    blocks = [m for m in _BLOCK.finditer(source) if m.group("type") == "script"]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise RuntimedError(f"{WHERE}: more than one script block", code="invalid_pep723")
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise RuntimedError(f"{WHERE} is not valid TOML: {exc}", code="invalid_pep723") from None
    deps = check_specs(data.get("dependencies", []), WHERE, "invalid_pep723")
    requires = data.get("requires-python")
    if requires is not None and not isinstance(requires, str):
        raise RuntimedError(f"{WHERE}: requires-python must be a string", "invalid_pep723")
    return ScriptMetadata(tuple(deps), requires)


def check_python(requires: str | None, version: str | None = None) -> None:
    """Refuse a ``requires-python`` the daemon's interpreter does not satisfy (envs are
    built on it; uv downloads no other Python here)."""
    if not requires:
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    running = version or ".".join(map(str, sys.version_info[:3]))
    try:
        ok = SpecifierSet(requires).contains(running, prereleases=True)
    except InvalidSpecifier:
        raise RuntimedError(
            f"{WHERE}: bad requires-python {requires!r}", "invalid_pep723"
        ) from None
    if not ok:
        raise RuntimedError(
            f"{WHERE} requires Python {requires}, but runtimed builds envs on Python "
            f"{running}; relax requires-python or run the daemon on a matching Python",
            code="invalid_pep723",
        )
