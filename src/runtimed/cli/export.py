"""A runtime's session as an nbformat v4 notebook, built from the execution history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtimed.errors import RuntimedError

if TYPE_CHECKING:
    from runtimed.client import DaemonClient

_KERNELSPECS = {
    "python": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
}


def notebook_from_history(
    client: DaemonClient, runtime_id: str, socket: str | None, limit: int
) -> dict[str, Any]:
    """One code cell per execution of the runtime, oldest first, with its outputs
    (blob references resolved) and execution count."""
    import nbformat

    from runtimed.client.blobs import BlobClient
    from runtimed.documents.blob_refs import output_refs, resolve_output

    entries = client.executions(runtime_id=runtime_id, limit=limit, oldest_first=True)
    if not entries:
        raise RuntimedError(
            f"no executions of runtime {runtime_id!r} in the history; see `runt history`",
            "not_found",
        )
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    language_info: dict[str, Any] | None = None
    with BlobClient(socket) as blobs:
        for summary in entries:
            if summary.source is None:  # cancelled before it ran
                continue
            entry = client.get_execution(summary.id)
            language_info = entry.language_info or language_info
            outputs = [
                resolve_output(o, blobs.get) if output_refs(o) else o for o in entry.outputs or []
            ]
            cell = nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
                source=entry.source or "", execution_count=entry.execution_count
            )
            cell["outputs"] = [nbformat.from_dict(o) for o in outputs]  # type: ignore[no-untyped-call]
            nb["cells"].append(cell)
    language = (language_info or {}).get("name") or entries[-1].language or "python"
    spec = _KERNELSPECS.get(language) or {
        "name": entries[-1].kernel_name or language,
        "display_name": entries[-1].kernel_name or language,
        "language": language,
    }
    nb["metadata"]["kernelspec"] = spec
    if language_info:
        nb["metadata"]["language_info"] = language_info
    nbformat.validate(nb)
    return nb  # type: ignore[no-any-return]


def write_notebook(nb: dict[str, Any], path: str) -> None:
    from pathlib import Path

    import nbformat

    from runtimed.files import atomic_write

    text = nbformat.writes(nbformat.from_dict(nb))  # type: ignore[no-untyped-call]
    atomic_write(Path(path), text.encode(), mode=0o644)
