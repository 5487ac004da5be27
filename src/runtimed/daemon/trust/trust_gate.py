"""TrustGate: whether a notebook's dependencies may be installed, and the review of those
that may not.

A dependency passes when its key is in the ``TrustStore``, when the notebook carries this
user's "created here" marker, or when it comes from a project file the user keeps (the
caller says so). Anything else stops the kernel start at once with
``untrusted_dependencies``, before any tool runs, naming the packages; ``runt trust``,
``Session.trust()`` or the web dialog approve them, and a later change of the dependencies
asks only for the new ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtimed.daemon.trust.lookalikes import lookalike
from runtimed.daemon.trust.own_notebooks import NotebookKey
from runtimed.daemon.trust.package_names import Dependency, TrustKey
from runtimed.daemon.trust.trust_store import TrustStore
from runtimed.errors import RuntimedError

UNTRUSTED = "untrusted_dependencies"


@dataclass(frozen=True)
class PackageReview:
    """One untrusted dependency and what a person should know before approving it."""

    dependency: Dependency
    warnings: tuple[str, ...]


def warnings_for(dependency: Dependency) -> tuple[str, ...]:
    """Look-alike names and direct references (URLs, local paths)."""
    found: list[str] = []
    if dependency.direct is not None:
        kind = "a local path" if "://" not in dependency.direct else "a direct URL"
        found.append(f"installs from {kind} ({dependency.direct}), not from the index")
    else:
        twin = lookalike(dependency.key.name)
        if twin is not None:
            found.append(f"the name looks like the popular package '{twin}': a typosquat?")
    return tuple(found)


class TrustGate:
    """The check every env source that installs packages goes through."""

    def __init__(self, store: TrustStore | None, key: NotebookKey | None) -> None:
        """``store`` None trusts everything (embedding and the env builders' own tests)."""
        self.store = store
        self.key = key

    @classmethod
    def trusting_everything(cls) -> TrustGate:
        return cls(None, None)

    def created_here(self, metadata: dict[str, Any]) -> bool:
        return self.key is not None and self.key.created_here(metadata)

    def untrusted(
        self, dependencies: Sequence[Dependency], metadata: dict[str, Any]
    ) -> list[PackageReview]:
        """The dependencies that need the user's approval, each with its warnings."""
        if self.store is None or not dependencies or self.created_here(metadata):
            return []
        approved = self.store.trusted(d.key for d in dependencies)
        pending: dict[TrustKey, Dependency] = {}
        for dependency in dependencies:
            if dependency.key not in approved:
                pending.setdefault(dependency.key, dependency)
        return [PackageReview(d, warnings_for(d)) for d in pending.values()]

    def check(
        self, dependencies: Sequence[Dependency], metadata: dict[str, Any], where: str | None
    ) -> None:
        """Raise ``untrusted_dependencies`` unless every dependency may be installed."""
        pending = self.untrusted(dependencies, metadata)
        if pending:
            raise untrusted_error(pending, where)


def untrusted_error(pending: Sequence[PackageReview], where: str | None) -> RuntimedError:
    names = ", ".join(r.dependency.key.label() + (" (!)" if r.warnings else "") for r in pending)
    how = f"`runt trust {where}`" if where else "`Session.trust()`"
    return RuntimedError(
        f"this notebook's dependencies are not trusted yet: {names}; nothing was installed. "
        f"Review and approve them with {how} (or the notebook's trust dialog)",
        code=UNTRUSTED,
    )
