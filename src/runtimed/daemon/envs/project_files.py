"""Finding the project files a notebook lives under, nearest first.

The walk starts in the notebook's directory and goes up, checking each directory for
``pyproject.toml``, ``pixi.toml`` and ``environment.yml`` (``.yaml``), in that order; it
stops after a directory that holds ``.git`` (the repository root) or is the home
directory. A project file counts as one *the user keeps* (trusted, like their own code)
when the user owns it and its directory and neither is writable by anyone else.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from runtimed.daemon.envs.dependency_specs import check_specs
from runtimed.errors import RuntimedError

PYPROJECT = "pyproject.toml"
PIXI_TOML = "pixi.toml"
ENV_YMLS = ("environment.yml", "environment.yaml")
#: In one directory, the first of these wins.
PROJECT_FILES = (PYPROJECT, PIXI_TOML, *ENV_YMLS)


@dataclass(frozen=True)
class ProjectSearch:
    """Where a walk started, where it stopped, and what it found (None: nothing)."""

    start: Path
    stop: Path
    found: Path | None

    def describe(self) -> str:
        names = "pyproject.toml, pixi.toml or environment.yml"
        if self.found is not None:
            return f"nearest project file walking up from {self.start}: {self.found}"
        return f"no {names} in {self.start} or its parents up to {self.stop}"


def find_project_file(start: Path, names: tuple[str, ...] = PROJECT_FILES) -> ProjectSearch:
    """The nearest of ``names`` in ``start`` or its parents, looking no higher than a
    directory that contains ``.git`` or the home directory (both are still checked)."""
    home = Path.home().resolve()
    directory = start
    for directory in (start, *start.parents):
        for name in names:
            candidate = directory / name
            if candidate.is_file():
                return ProjectSearch(start, directory, candidate)
        if (directory / ".git").exists() or directory == home:
            break
    return ProjectSearch(start, directory, None)


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` (the same walk, for that one name)."""
    return find_project_file(start, (PYPROJECT,)).found


def notebook_dir(notebook_path: str) -> Path:
    """The directory a search starts in: the notebook's."""
    path = Path(notebook_path).expanduser().resolve()
    return path if path.is_dir() else path.parent


def user_keeps(path: Path) -> bool:
    """Whether ``path`` and its directory are this user's and writable by nobody else."""
    try:
        for item in (path, path.parent):
            info = item.stat()
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
    except OSError:
        return False
    return True


def read_toml(path: Path, code: str) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuntimedError(f"cannot read {path}: {exc}", code=code) from None


def pyproject_dependencies(pyproject: Path) -> list[str]:
    """``[project].dependencies`` of ``pyproject``, checked."""
    data = read_toml(pyproject, "invalid_pyproject")
    project = data.get("project", {})
    if not isinstance(project, dict):
        raise RuntimedError(f"{pyproject}: [project] is not a table", code="invalid_pyproject")
    deps = project.get("dependencies", [])
    return check_specs(deps, f"{pyproject}: [project].dependencies", "invalid_pyproject")
