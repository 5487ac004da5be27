"""NotebookFile in-process: saving valid .ipynb, refusing to overwrite a file changed on
disk, unsaved changes, copies elsewhere, blob references resolved. No daemon."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers import write_notebook
from runtimed.daemon.rooms.notebook_file import NotebookFile, file_hash, read_ipynb
from runtimed.documents.notebook import NotebookDoc
from runtimed.errors import RuntimedError


def _loaded(path: Path) -> NotebookFile:
    """A file as a room loads it: the document holds exactly the file."""
    notebook, loaded_hash = read_ipynb(path)
    nb = NotebookDoc()
    nb.load_nbformat(notebook)
    nb.ensure_meta()
    file = NotebookFile(nb, str(path), loaded_hash)
    file.mark_clean()
    return file


def test_a_loaded_file_is_clean_until_the_document_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "x = 1")
    file = _loaded(path)
    assert not file.dirty
    assert not file.changed_on_disk()
    file.nb.insert_cell(None, "y = 2")
    assert file.dirty


def test_save_writes_valid_nbformat_and_makes_the_file_clean(tmp_path: Path) -> None:
    saved: list[str | None] = []
    nb = NotebookDoc()
    nb.ensure_meta()
    file = NotebookFile(nb, on_meta_changed=lambda: saved.append(file.path))
    nb.insert_cell(None, "print('hi')")
    nb.insert_cell(None, "# Title", "markdown")
    assert file.dirty
    target = tmp_path / "out.ipynb"
    assert file.save(str(target)) == str(target)
    written = nbformat.read(target, as_version=4)
    nbformat.validate(written)
    assert [c.cell_type for c in written.cells] == ["code", "markdown"]
    # An untitled notebook's first save names its file.
    assert file.path == str(target) and file.file_hash == file_hash(target)
    assert not file.dirty and saved == [str(target)]
    assert file.meta() == {
        "path": str(target),
        "file_hash": file_hash(target),
        "clean_state": file.clean_state,
        "file_cells": 2,
        "cells_deleted": 0,
    }


def test_a_file_changed_on_disk_is_not_overwritten_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "mine")
    file = _loaded(path)
    write_notebook(path, "someone else's")
    assert file.changed_on_disk()
    with pytest.raises(RuntimedError) as refused:
        file.save(None)
    assert refused.value.code == "file_changed"
    assert [c.source for c in nbformat.read(path, as_version=4).cells] == ["someone else's"]
    file.save(None, force=True)
    assert [c.source for c in nbformat.read(path, as_version=4).cells] == ["mine"]
    assert not file.changed_on_disk()


def test_a_deleted_file_counts_as_changed(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "x")
    file = _loaded(path)
    path.unlink()
    assert file.changed_on_disk()


def test_a_copy_elsewhere_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "a.ipynb"
    write_notebook(path, "x")
    file = _loaded(path)
    file.nb.insert_cell(None, "unsaved")
    calls: list[None] = []
    file.on_meta_changed = lambda: calls.append(None)
    copy = tmp_path / "copy.ipynb"
    file.save(str(copy))
    assert [c.source for c in nbformat.read(copy, as_version=4).cells] == ["x", "unsaved"]
    assert file.path == str(path) and file.dirty and calls == []


@pytest.mark.parametrize(("path", "code"), [(None, "no_path"), ("relative.ipynb", "invalid_path")])
def test_save_needs_an_absolute_path(path: str | None, code: str) -> None:
    file = NotebookFile(NotebookDoc())
    with pytest.raises(RuntimedError) as refused:
        file.save(path)
    assert refused.value.code == code


def test_an_unwritable_target_is_an_io_error(tmp_path: Path) -> None:
    nb = NotebookDoc()
    nb.ensure_meta()
    with pytest.raises(RuntimedError) as refused:
        NotebookFile(nb).save(str(tmp_path / "missing-dir" / "a.ipynb"))
    assert refused.value.code == "io_error"


def test_blob_references_are_saved_as_their_content(tmp_path: Path) -> None:
    from runtimed.documents.blob_refs import refer_notebook_outputs

    big = "x" * 4096
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(big)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=big)]
    notebook.cells = [cell]
    blobs: dict[str, bytes] = {}

    def put(data: bytes, media_type: str) -> str:
        blobs[f"h{len(blobs)}"] = data
        return f"h{len(blobs) - 1}"

    referred = refer_notebook_outputs(dict(notebook), put, 1024)
    assert blobs, "the large output went to a blob"
    nb = NotebookDoc()
    nb.load_nbformat(referred)
    nb.ensure_meta()
    target = tmp_path / "out.ipynb"
    NotebookFile(nb).save(str(target), blob_fetch=blobs.__getitem__)
    saved = nbformat.read(target, as_version=4)
    assert saved.cells[0].outputs[0].text == big


def test_the_daemons_preload_skips_the_iri_grammars_and_still_validates() -> None:
    # In a process of its own, as the daemon: the test process has imported nbformat.
    code = (
        "import sys\n"
        "from runtimed.daemon.warm_up import preload_notebook_modules\n"
        "preload_notebook_modules()\n"
        "import nbformat\n"
        "print(sys.modules.get('rfc3987_syntax') is None)\n"
        "nb = nbformat.v4.new_notebook()\n"
        "nb.cells.append({'cell_type': 'nope', 'id': 'a', 'metadata': {}, 'source': ''})\n"
        "try:\n"
        "    nbformat.validate(nb)\n"
        "except nbformat.ValidationError:\n"
        "    print('refused')\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "refused"], done.stderr
