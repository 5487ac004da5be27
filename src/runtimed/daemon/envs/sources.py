"""The env sources, what ``auto`` picks for a notebook and why.

``auto``, first match wins:

1. notebook metadata: ``metadata.runt.uv.dependencies`` (``uv:inline``), else
   ``metadata.runt.conda.dependencies`` (``conda:inline``);
2. the nearest project file, walking up from the notebook to the repository root or
   ``$HOME``: ``pyproject.toml`` (``uv:pyproject``), ``pixi.toml`` (``pixi:toml``),
   ``environment.yml`` (``conda:env_yml``); in one directory in that order;
3. a PEP 723 ``# /// script`` block in the first code cell (``uv:pep723``);
4. the prewarmed pool of the ``default_python_env`` setting.

``choose`` walks the file system: call it from a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtimed.daemon.envs.dependency_specs import metadata_specs
from runtimed.daemon.envs.pep723 import script_metadata
from runtimed.daemon.envs.project_files import (
    ENV_YMLS,
    PIXI_TOML,
    PYPROJECT,
    ProjectSearch,
    find_project_file,
    notebook_dir,
)

if TYPE_CHECKING:
    from runtimed.documents.notebook import NotebookDoc

AUTO = "auto"
UV_PREWARMED = "uv:prewarmed"
CONDA_PREWARMED = "conda:prewarmed"
UV_INLINE = "uv:inline"
UV_PYPROJECT = "uv:pyproject"
CONDA_INLINE = "conda:inline"
UV_PEP723 = "uv:pep723"
CONDA_ENV_YML = "conda:env_yml"
PIXI_TOML_SOURCE = "pixi:toml"

#: Every env_source ``resolve`` accepts, ``auto`` first.
ENV_SOURCES = (
    AUTO, UV_PREWARMED, CONDA_PREWARMED, UV_INLINE, UV_PYPROJECT, CONDA_INLINE,
    UV_PEP723, CONDA_ENV_YML, PIXI_TOML_SOURCE,
)  # fmt: skip
#: Sources that read a project file, and the file names each accepts.
PROJECT_SOURCES = {UV_PYPROJECT: (PYPROJECT,), PIXI_TOML_SOURCE: (PIXI_TOML,),
                   CONDA_ENV_YML: ENV_YMLS}  # fmt: skip


@dataclass(frozen=True)
class NotebookFacts:
    """What the choice depends on: metadata, the file's path, the first code cell."""

    metadata: dict[str, Any]
    path: str | None
    first_code_cell: str | None = None

    @classmethod
    def of_document(cls, nb: NotebookDoc, path: str | None) -> NotebookFacts:
        return cls(nb.metadata(), path, first_code_cell(nb))

    @classmethod
    def of_nbformat(cls, notebook: dict[str, Any], path: str | None) -> NotebookFacts:
        metadata = notebook.get("metadata")
        first = None
        for cell in notebook.get("cells") or []:
            if isinstance(cell, dict) and cell.get("cell_type") == "code":
                source = cell.get("source", "")
                first = "".join(source) if isinstance(source, list) else str(source)
                break
        return cls(metadata if isinstance(metadata, dict) else {}, path, first)


def first_code_cell(nb: NotebookDoc) -> str | None:
    """The source of the document's first code cell (None: no code cell)."""
    for ycell in nb.cells:
        try:
            if ycell.get("cell_type") == "code":
                return str(ycell.get("source", ""))
        except AttributeError:  # garbage in the cells array: not a cell
            continue
    return None


@dataclass(frozen=True)
class Step:
    """One rung of the ``auto`` ladder: the source, whether it matched, and why."""

    source: str
    matched: bool
    reason: str


@dataclass(frozen=True)
class Choice:
    """What ``auto`` picked (``source``), every rung considered, the project file used."""

    source: str
    steps: tuple[Step, ...]
    project_file: Path | None = None


def project_source(path: Path) -> str:
    """The env source of a project file, by its name."""
    for source, names in PROJECT_SOURCES.items():
        if path.name in names:
            return source
    raise ValueError(f"not a project file: {path}")


def choose(facts: NotebookFacts, default_python_env: str) -> Choice:
    """Every rung of ``auto`` for ``facts``; the first that matched wins."""
    steps: list[Step] = []
    for kind, source in (("uv", UV_INLINE), ("conda", CONDA_INLINE)):
        specs = metadata_specs(facts.metadata, kind, "dependencies")
        where = f"metadata.runt.{kind}.dependencies"
        reason = f"{where} lists {len(specs)}" if specs else f"no {where}"
        steps.append(Step(source, bool(specs), reason))
    search: ProjectSearch | None = None
    if facts.path:
        search = find_project_file(notebook_dir(facts.path))
        found = search.found
        source = project_source(found) if found else "project file"
        steps.append(Step(source, found is not None, search.describe()))
    else:
        steps.append(Step("project file", False, "the notebook has no file to search from"))
    script = script_metadata(facts.first_code_cell)
    reason = (
        f"the first code cell has a `# /// script` block ({len(script.dependencies)} dependencies)"
        if script
        else "no `# /// script` block in the first code cell"
    )
    steps.append(Step(UV_PEP723, script is not None, reason))
    pool = CONDA_PREWARMED if default_python_env == "conda" else UV_PREWARMED
    steps.append(Step(pool, True, f"the default_python_env setting is {default_python_env!r}"))
    winner = next(s for s in steps if s.matched)
    project = search.found if search is not None and winner.source in PROJECT_SOURCES else None
    return Choice(winner.source, tuple(steps), project)
