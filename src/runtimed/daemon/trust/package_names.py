"""A dependency as the trust store keys it: ecosystem, normalised name, conda channel.

``Requests>=2``, ``requests [socks]`` and ``REQUESTS`` are one PyPI package; a conda
package is trusted per channel (``numpy`` from conda-forge is not ``numpy`` from a
channel someone else runs). A direct reference (``name @ https://...``, a local path, a
wheel URL) is keyed by the reference itself: approving ``foo`` never approves some
``foo @ <url>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Ecosystem = Literal["pypi", "conda"]

_CONDA_NAME = re.compile(r"^[A-Za-z0-9_.\-]+")
_ANACONDA = "https://conda.anaconda.org/"
_PATH_LIKE = re.compile(r"^(\.{1,2}/|/|~|[A-Za-z]:[\\/])")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True, order=True)
class TrustKey:
    """What one approval covers."""

    ecosystem: Ecosystem
    name: str
    channel: str = ""

    def label(self) -> str:
        """``six`` or ``numpy (conda-forge)``, for people."""
        return f"{self.name} ({self.channel})" if self.channel else self.name


@dataclass(frozen=True)
class Dependency:
    """One package a source would install. ``spec`` is as written; ``origin`` says where
    (``metadata.runt.uv.dependencies``, ``/x/environment.yml``, ...); ``direct`` is the
    URL or path of a direct reference."""

    key: TrustKey
    spec: str
    origin: str
    direct: str | None = None


def pypi_dependency(spec: str, origin: str) -> Dependency:
    """The key of a PEP 508 requirement, a URL or a local path as uv would take it."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    text = spec.strip()
    if _PATH_LIKE.match(text) or _URL.match(text) or text.startswith("file:"):
        return Dependency(TrustKey("pypi", text), spec, origin, direct=text)
    try:
        req = Requirement(text)
    except InvalidRequirement:
        # uv will refuse it; keyed as written so it can never match a real package.
        return Dependency(TrustKey("pypi", text.lower()), spec, origin)
    name = canonicalize_name(req.name)
    if req.url:
        return Dependency(TrustKey("pypi", f"{name} @ {req.url}"), spec, origin, direct=req.url)
    return Dependency(TrustKey("pypi", name), spec, origin)


def conda_dependencies(spec: str, channels: list[str], origin: str) -> list[Dependency]:
    """One key per channel the package may come from (``channel::name`` names one)."""
    text = spec.strip()
    if "::" in text:
        channel, text = text.split("::", 1)
        channels = [channel]
    match = _CONDA_NAME.match(text)
    name = (match.group(0) if match else text).lower()
    direct = text if (_URL.match(text) or _PATH_LIKE.match(text)) else None
    return [
        Dependency(TrustKey("conda", direct or name, normalise_channel(c)), spec, origin, direct)
        for c in dict.fromkeys(channels)
    ]


def normalise_channel(channel: str) -> str:
    """``conda-forge``, ``https://conda.anaconda.org/conda-forge/`` -> ``conda-forge``."""
    text = channel.strip().rstrip("/")
    if text.startswith(_ANACONDA):
        text = text[len(_ANACONDA) :]
    return text
