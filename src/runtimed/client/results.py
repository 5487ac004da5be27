"""What an execution gives back: ExecutionResult, its Outputs, and the error if any."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

from runtimed.documents.blob_refs import Fetch, is_ref, resolve_output
from runtimed.documents.notebook import CellData


class TextParts:
    """Stream text as it was fetched: stored parts (UTF-8 bytes) and inline strings."""

    def __init__(self, parts: tuple[bytes | str, ...]) -> None:
        self.parts = parts

    def join(self) -> str:
        return "".join(
            p.decode("utf-8", errors="replace") if isinstance(p, bytes) else p for p in self.parts
        )


class _LazyText:
    """A field holding ``str | None``, also settable to ``TextParts``: those are decoded
    and joined when first read. A cell that printed 50 MB gives its result at once; the
    50 MB string is made only for a caller that reads it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._key = "_" + name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> None: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> str | None: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> str | None:
        if obj is None:
            return None  # the field's default
        value = obj.__dict__.get(self._key)
        if isinstance(value, TextParts):
            value = obj.__dict__[self._key] = value.join()
        return value  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: str | TextParts | None) -> None:
        obj.__dict__[self._key] = value


@dataclass(frozen=True)
class Output:
    """One nbformat output of a cell."""

    output_type: str
    name: str | None = None  # stream: stdout / stderr
    text: _LazyText = _LazyText()  # stream text (str | None)
    data: dict[str, Any] = field(default_factory=dict)  # display_data / execute_result
    metadata: dict[str, Any] = field(default_factory=dict)
    ename: str | None = None  # error
    evalue: str | None = None
    traceback: list[str] = field(default_factory=list)
    execution_count: int | None = None

    @classmethod
    def from_nbformat(cls, output: dict[str, Any], fetch: Fetch | None = None) -> Output:
        """From an nbformat output; blob references are resolved with ``fetch`` (stream
        text's when first read)."""
        text = output.get("text")
        if fetch is not None:
            if is_ref(text):
                text = [text]
            if isinstance(text, list) and any(is_ref(p) for p in text):
                text = TextParts(tuple(fetch(p["blob"]) if is_ref(p) else str(p) for p in text))
            output = resolve_output({**output, "text": None}, fetch)
        return cls(
            output_type=str(output.get("output_type", "")),
            name=output.get("name"),
            text="".join(text) if isinstance(text, list) else text,
            data=dict(output.get("data") or {}),
            metadata=dict(output.get("metadata") or {}),
            ename=output.get("ename"),
            evalue=output.get("evalue"),
            traceback=list(output.get("traceback") or []),
            execution_count=output.get("execution_count"),
        )


@dataclass(frozen=True)
class Cell:
    """A snapshot of one cell; its outputs are ``Output``s, as in ``ExecutionResult``
    (blob references resolved)."""

    id: str
    cell_type: str
    source: str
    execution_count: int | None = None
    outputs: list[Output] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, cell: CellData, fetch: Fetch | None = None) -> Cell:
        return cls(
            id=cell.id,
            cell_type=cell.cell_type,
            source=cell.source,
            execution_count=cell.execution_count,
            outputs=[Output.from_nbformat(o, fetch) for o in cell.outputs],
            metadata=cell.metadata,
        )


@dataclass(frozen=True)
class ExecutionError:
    ename: str
    evalue: str
    traceback: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.ename}: {self.evalue}"


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one cell execution, read from the shared document."""

    cell_id: str
    execution_id: str
    status: str  # done, error or cancelled
    success: bool
    execution_count: int | None
    outputs: list[Output]
    message: str | None = None  # why an execution failed or was cancelled

    @classmethod
    def from_cell(
        cls, cell: CellData, record: dict[str, Any], fetch: Fetch | None = None
    ) -> ExecutionResult:
        return cls(
            cell_id=cell.id,
            execution_id=str(record.get("execution_id")),
            status=str(record.get("status")),
            success=bool(record.get("success")),
            execution_count=record.get("execution_count") or cell.execution_count,
            outputs=[Output.from_nbformat(o, fetch) for o in cell.outputs],
            message=record.get("error"),
        )

    def _stream(self, name: str) -> str:
        return "".join(
            o.text or "" for o in self.outputs if o.output_type == "stream" and o.name == name
        )

    @cached_property
    def stdout(self) -> str:
        return self._stream("stdout")

    @cached_property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def display_data(self) -> list[Output]:
        """display_data and execute_result outputs, in order."""
        return [o for o in self.outputs if o.output_type in ("display_data", "execute_result")]

    @property
    def error(self) -> ExecutionError | None:
        for o in self.outputs:
            if o.output_type == "error":
                return ExecutionError(o.ename or "", o.evalue or "", o.traceback)
        if not self.success and self.message:
            return ExecutionError(self.status.capitalize(), self.message)
        return None
