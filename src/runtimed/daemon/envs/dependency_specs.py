"""Package specs read from notebooks and project files, checked before any tool sees them."""

from __future__ import annotations

from typing import Any

from runtimed.errors import RuntimedError

_MAX_SPEC_LEN = 1000
_MAX_SPECS = 500


def metadata_specs(metadata: dict[str, Any], kind: str, key: str) -> list[str] | None:
    """``metadata.runt.<kind>.<key>`` as a checked list of strings; None when absent."""
    runt = metadata.get("runt") if isinstance(metadata, dict) else None
    section = runt.get(kind) if isinstance(runt, dict) else None
    if not isinstance(section, dict) or section.get(key) is None:
        return None
    return check_specs(section[key], f"metadata.runt.{kind}.{key}", "invalid_metadata")


def check_specs(value: object, where: str, code: str) -> list[str]:
    """Package specs as they go to uv/rattler: plain strings, never command-line options."""
    if not isinstance(value, list) or len(value) > _MAX_SPECS:
        raise RuntimedError(f"{where} must be a list of strings", code=code)
    specs: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise RuntimedError(f"{where} must be a list of strings, got {item!r}", code=code)
        spec = item.strip()
        if (
            not spec
            or spec.startswith("-")
            or len(spec) > _MAX_SPEC_LEN
            or any(ord(c) < 32 for c in spec)
        ):
            raise RuntimedError(f"{where}: {item!r} is not a package spec", code=code)
        specs.append(spec)
    return specs
