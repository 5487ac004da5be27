"""A room's .ipynb file: reading it, hashing it, and ``NotebookFile`` (save, change
detection, whether the document has unsaved changes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from runtimed.errors import RuntimedError
from runtimed.files import atomic_write

if TYPE_CHECKING:  # the loader's helper process reads files without loading pycrdt
    from runtimed.documents.notebook import NotebookDoc


def text_hash(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def file_hash(path: Path) -> str | None:
    """The hash of a file's bytes as ``read_ipynb`` computes it; None if it is gone.
    Read a megabyte at a time: a 200 MB notebook is never in memory for it."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def read_ipynb(path: Path) -> tuple[dict[str, Any], str]:
    """The notebook as an nbformat v4 dict, and the hash of the file's text.

    Unreadable, non-JSON or invalid notebooks raise RuntimedError saying which.
    """
    import nbformat

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RuntimedError(f"no such notebook: {path}", "not_found") from None
    except OSError as exc:
        raise RuntimedError(f"cannot read {path}: {exc}", "unreadable") from exc
    try:
        # Parsed once, by msgspec: a few times faster than json, and this holds the GIL
        # (the daemon's event loop waits) for as long as it runs on a 200 MB file.
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RuntimedError(
            f"{path} is not a notebook (invalid JSON: {exc})", "invalid_notebook"
        ) from exc
    if not isinstance(raw, dict) or "cells" not in raw:
        raise RuntimedError(f"{path} is not a notebook (no cells)", "invalid_notebook")
    try:
        # nbformat.reads would parse again and validate too (only logging what it finds):
        # convert here, then validate once.
        nb = nbformat.convert(nbformat.from_dict(raw), 4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several unrelated types
        message = getattr(exc, "message", None) or str(exc)
        raise RuntimedError(
            f"{path} is not a valid notebook: {message.splitlines()[0]}", "invalid_notebook"
        ) from exc
    return dict(nb), text_hash(data)


class NotebookFile:
    """The .ipynb file of one room's notebook: where it is, the hash of its bytes when it
    was last loaded or saved, the document's state then, how many cells the file has, and
    how many cells were deleted since.

    ``path`` is None for an untitled notebook until its first save names one. Whenever
    what ``meta`` returns changes (a save to its file, a deletion) ``on_meta_changed`` is
    called (the room's persistence then writes its stored meta).
    """

    def __init__(
        self,
        nb: NotebookDoc,
        path: str | None = None,
        file_hash: str | None = None,
        clean_state: str | None = None,
        on_meta_changed: Callable[[], None] = lambda: None,
        file_cells: int | None = None,
        cells_deleted: int = 0,
    ) -> None:
        self.nb = nb
        self.path = path
        self.file_hash = file_hash
        #: The document's state vector when it last matched its file (loaded or saved).
        self.clean_state = clean_state
        self.on_meta_changed = on_meta_changed
        #: Cells in the file when it last matched the document (None: not known).
        self.file_cells = file_cells
        #: Cells removed from the document since then, by anyone (see ``watch_cells``).
        self.cells_deleted = cells_deleted

    def mark_clean(self) -> None:
        """The document now holds exactly the file's content (it was just loaded)."""
        self.clean_state = self.nb.doc.get_state().hex()
        self.file_cells = len(self.nb.cells)
        self.cells_deleted = 0

    def watch_cells(self) -> None:
        """Count, from now on, the cells removed from the document by anyone: deliberate
        deletions, which ``save`` does not take for lost cells."""
        self.nb.cells.observe(self._on_cells)

    def _on_cells(self, event: Any) -> None:  # pycrdt.ArrayEvent (its delta is untyped)
        delta: list[dict[str, Any]] = event.delta
        removed = sum(int(change.get("delete", 0)) for change in delta)
        if removed:
            self.cells_deleted += removed
            self.on_meta_changed()  # kept in the meta: a restarted daemon still knows

    @property
    def dirty(self) -> bool:
        """True when the document has changes its file does not have."""
        return self.clean_state != self.nb.doc.get_state().hex()

    def changed_on_disk(self) -> bool:
        """True when the file is not the one last loaded or saved (blocking: it reads
        the file)."""
        return self.path is not None and file_hash(Path(self.path)) != self.file_hash

    def meta(self) -> dict[str, Any]:
        """What the room's stored meta keeps of its file."""
        return {
            "path": self.path,
            "file_hash": self.file_hash,
            "clean_state": self.clean_state,
            "file_cells": self.file_cells,
            "cells_deleted": self.cells_deleted,
        }

    def save(
        self,
        path: str | None,
        blob_fetch: Callable[[str], bytes] | None = None,
        force: bool = False,
    ) -> str:
        """Write the notebook as nbformat-valid .ipynb, atomically (temp + rename), to
        ``path`` or else its own file; returns the path written.

        Its own file is not overwritten, unless ``force``, when it changed on disk since
        it was loaded or saved, or when the document has fewer cells than the file had
        and not as many were deleted since (cells it lost, not ones a user deleted).
        ``blob_fetch`` resolves blob references in outputs (the file gets the content).
        """
        target = path or self.path
        if not target:
            raise RuntimedError("this notebook has no file yet; pass a path to save()", "no_path")
        if not os.path.isabs(target):
            raise RuntimedError(f"save path must be absolute: {target!r}", "invalid_path")
        if target == self.path and not force and self.changed_on_disk():
            raise RuntimedError(
                f"{target} changed on disk since this notebook was opened or saved; "
                "reopen it to load the new version, or save with force=True to overwrite it",
                "file_changed",
            )
        if target == self.path and not force:
            self._refuse_lost_cells(target)
        state = self.nb.doc.get_state().hex()
        cells = len(self.nb.cells)
        text = _ipynb_text(self.nb, blob_fetch)
        try:
            atomic_write(Path(target), text.encode("utf-8"), sync=False)
        except OSError as exc:
            raise RuntimedError(f"cannot write {target}: {exc.strerror}", "io_error") from exc
        if self.path is None or self.path == target:  # a copy elsewhere leaves it as it was
            self.path = target
            self.file_hash = text_hash(text)
            self.clean_state = state
            self.file_cells = cells
            self.cells_deleted = 0
            self.on_meta_changed()
        return target

    def _refuse_lost_cells(self, target: str) -> None:
        """``cells_lost`` when saving would drop cells of ``target`` nobody deleted: a
        document that lost them (a damaged store, a bug) must not replace the file."""
        file_cells = self.file_cells if self.file_cells is not None else _cells_in(Path(target))
        cells = len(self.nb.cells)
        if not file_cells or cells >= file_cells - self.cells_deleted:
            return
        deleted = (
            "no cell was deleted"
            if self.cells_deleted == 0
            else f"only {self.cells_deleted} were deleted"
        )
        raise RuntimedError(
            f"refusing to save {target}: the file has {file_cells} cells, the notebook "
            f"{cells}, and {deleted} since it was opened or saved; save(force=True) "
            "overwrites it",
            "cells_lost",
        )


def _cells_in(path: Path) -> int | None:
    """How many cells the notebook file at ``path`` has (None: unreadable)."""
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    cells = raw.get("cells") if isinstance(raw, dict) else None
    return len(cells) if isinstance(cells, list) else None


def _ipynb_text(nb: NotebookDoc, blob_fetch: Callable[[str], bytes] | None) -> str:
    """The notebook as validated .ipynb text."""
    import nbformat

    nb_dict = nb.to_nbformat()
    if blob_fetch is not None:  # outputs hold blob references: the file gets the content
        from runtimed.documents.blob_refs import resolve_output

        for cell in nb_dict["cells"]:
            if "outputs" in cell:
                cell["outputs"] = [resolve_output(o, blob_fetch) for o in cell["outputs"]]
    notebook = nbformat.from_dict(nb_dict)  # type: ignore[no-untyped-call]
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        raise RuntimedError(
            f"the notebook is not valid nbformat: {exc.message}", "invalid_notebook"
        ) from exc
    return str(nbformat.writes(notebook))  # type: ignore[no-untyped-call]
