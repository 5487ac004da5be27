"""What the daemon's start sequence does once the socket answers: load what the first
notebook needs, then give back the memory the imports freed."""

from __future__ import annotations

import contextlib
import sys


def release_freed_memory() -> None:
    """Hand back to the system what the start-up imports freed: glibc keeps it (~3 MB
    of idle RSS). Elsewhere, nothing to do."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def preload_notebook_modules() -> None:
    """Load now what the first notebook needs, while nobody waits for it."""
    import importlib

    skip_iri_grammars()
    for name in (
        "anyio._backends._asyncio",  # pycrdt's Doc() loads it on first use in a loop
        "nbformat",
    ):
        importlib.import_module(name)
    import nbformat

    nbformat.validate(nbformat.v4.new_notebook())  # type: ignore[no-untyped-call]


def skip_iri_grammars() -> None:
    """Keep jsonschema (under nbformat) from importing rfc3987_syntax, which builds ~35
    Earley parsers at import: ~1.6 CPU-s, with the event loop blocked, in every daemon
    where it is installed (jupyter-events, under JupyterLab, brings it), for the "iri"
    formats that no notebook schema uses (python-jsonschema/jsonschema#1428). jsonschema
    then goes without those two format checks, as when the package is not installed."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
