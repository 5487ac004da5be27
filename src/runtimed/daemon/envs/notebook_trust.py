"""NotebookTrust: what a notebook's env would install, and which of it needs approval.

One code path for the kernel start (``check``: raise ``untrusted_dependencies`` before any
tool runs), ``runt trust`` and ``Session.trust()`` (``review``, then ``approve``). Pool
sources install nothing of the notebook's. A project file the user keeps (see
``project_files.user_keeps``) is trusted like the user's own code; notebook metadata and
a notebook's ``# /// script`` block never are, unless the notebook carries this user's
"created here" marker.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtimed.daemon.envs.dependency_specs import metadata_specs
from runtimed.daemon.envs.env_yml import read_environment_yml
from runtimed.daemon.envs.pep723 import WHERE as PEP723_WHERE
from runtimed.daemon.envs.pep723 import script_metadata
from runtimed.daemon.envs.pixi_env import pixi_dependencies
from runtimed.daemon.envs.project_files import (
    find_project_file,
    notebook_dir,
    pyproject_dependencies,
    user_keeps,
)
from runtimed.daemon.envs.sources import (
    AUTO,
    CONDA_ENV_YML,
    CONDA_INLINE,
    PIXI_TOML_SOURCE,
    PROJECT_SOURCES,
    UV_INLINE,
    UV_PEP723,
    UV_PYPROJECT,
    NotebookFacts,
    choose,
)
from runtimed.daemon.trust.package_names import Dependency, conda_dependencies, pypi_dependency
from runtimed.daemon.trust.trust_gate import PackageReview, TrustGate, untrusted_error
from runtimed.protocol.room import TrustReport, UntrustedPackage

#: What the builders add themselves: never asked about.
_BASE = {("pypi", "ipykernel"), ("pypi", "ipywidgets"), ("conda", "python"),
         ("conda", "ipykernel"), ("conda", "ipywidgets")}  # fmt: skip


@dataclass(frozen=True)
class TrustReview:
    """The packages of ``source`` that need approval (``pending``) and, when nothing
    does, why (``note``)."""

    source: str
    pending: list[PackageReview] = field(default_factory=list)
    note: str = ""
    project_file: Path | None = None


class NotebookTrust:
    """Reviews and approvals of notebooks' dependencies through one ``TrustGate``."""

    def __init__(
        self,
        gate: TrustGate,
        default_python_env: Callable[[], str],
        conda_channels: Callable[[], list[str]],
    ) -> None:
        self.gate = gate
        self.default_python_env = default_python_env
        self.conda_channels = conda_channels

    def review(self, facts: NotebookFacts, env_source: str = AUTO) -> TrustReview:
        """What of ``env_source`` (``auto``: the source it picks) needs approval
        (blocking: reads files)."""
        source, project = env_source, None
        if env_source == AUTO:
            choice = choose(facts, self.default_python_env())
            source, project = choice.source, choice.project_file
        if source in PROJECT_SOURCES and project is None and facts.path:
            project = find_project_file(notebook_dir(facts.path), PROJECT_SOURCES[source]).found
        if project is not None and user_keeps(project):
            return TrustReview(source, note=f"{project} is a project file you keep",
                               project_file=project)  # fmt: skip
        deps = self.dependencies(source, facts, project)
        if deps and self.gate.created_here(facts.metadata):
            return TrustReview(source, note="the notebook was created here, by you")
        pending = self.gate.untrusted(deps, facts.metadata)
        note = "" if pending else ("every dependency is approved" if deps else "nothing to install")
        return TrustReview(source, pending, note, project)

    def check(self, env_source: str, facts: NotebookFacts) -> None:
        """Raise ``untrusted_dependencies`` unless ``env_source`` may install its packages."""
        pending = self.review(facts, env_source).pending
        if pending:
            raise untrusted_error(pending, facts.path)

    def approve(
        self, facts: NotebookFacts, env_source: str = AUTO, only: Collection[str] | None = None
    ) -> TrustReview:
        """Approve what ``review`` lists (``only``: just those labels or names); returns
        what was approved."""
        review = self.review(facts, env_source)
        chosen = [
            r for r in review.pending
            if only is None or r.dependency.key.name in only or r.dependency.key.label() in only
        ]  # fmt: skip
        if chosen and self.gate.store is not None:
            self.gate.store.approve(r.dependency.key for r in chosen)
        return TrustReview(review.source, chosen, review.note, review.project_file)

    def dependencies(
        self, source: str, facts: NotebookFacts, project: Path | None
    ) -> list[Dependency]:
        """Every package ``source`` would install for the notebook (not the base ones)."""
        found = self._all_dependencies(source, facts, project)
        return [d for d in found if (d.key.ecosystem, d.key.name) not in _BASE]

    def _all_dependencies(
        self, source: str, facts: NotebookFacts, project: Path | None
    ) -> list[Dependency]:
        metadata: dict[str, Any] = facts.metadata
        if source == UV_INLINE:
            where = "metadata.runt.uv.dependencies"
            specs = metadata_specs(metadata, "uv", "dependencies") or []
            return [pypi_dependency(s, where) for s in specs]
        if source == CONDA_INLINE:
            where = "metadata.runt.conda.dependencies"
            channels = metadata_specs(metadata, "conda", "channels") or self.conda_channels()
            specs = metadata_specs(metadata, "conda", "dependencies") or []
            return [d for s in specs for d in conda_dependencies(s, channels, where)]
        if source == UV_PEP723:
            script = script_metadata(facts.first_code_cell)
            specs_723 = script.dependencies if script else ()
            return [pypi_dependency(s, PEP723_WHERE) for s in specs_723]
        if project is None:
            return []
        if source == UV_PYPROJECT:
            return [pypi_dependency(s, str(project)) for s in pyproject_dependencies(project)]
        if source == CONDA_ENV_YML:
            yml = read_environment_yml(project)
            conda = [d for s in yml.conda for d in conda_dependencies(s, list(yml.channels),
                                                                       str(project))]  # fmt: skip
            return [*conda, *(pypi_dependency(s, f"{project} (pip)") for s in yml.pip)]
        if source == PIXI_TOML_SOURCE:
            return pixi_dependencies(project)
        return []


def trust_report(
    trust: NotebookTrust,
    facts: NotebookFacts,
    approve: bool,
    packages: list[str] | None,
    env_source: str = AUTO,
) -> TrustReport:
    """A ``TrustRequest`` answered (blocking): approve if asked, then what is still pending."""
    approved = trust.approve(facts, env_source, packages).pending if approve else []
    review = trust.review(facts, env_source)
    return TrustReport(
        env_source=review.source,
        untrusted=[untrusted_package(r) for r in review.pending],
        approved=[untrusted_package(r) for r in approved],
        note=review.note,
    )


def untrusted_package(review: PackageReview) -> UntrustedPackage:
    dep = review.dependency
    return UntrustedPackage(
        name=dep.key.name,
        ecosystem=dep.key.ecosystem,
        spec=dep.spec,
        origin=dep.origin,
        channel=dep.key.channel,
        warnings=list(review.warnings),
        label=dep.key.label(),
    )
