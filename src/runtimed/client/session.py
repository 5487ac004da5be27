"""Session: the blocking twin of AsyncSession.

It runs one AsyncSession on an event loop in a private thread (an anyio blocking portal)
and waits for each call, so both flavours share every line of protocol code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from runtimed.client.async_session import AsyncSession, EventListener
from runtimed.documents.notebook import Cell, NotebookDoc

T = TypeVar("T")


class Session:
    """A notebook session for scripts: ``with Session("my-notebook") as s: ...``."""

    def __init__(
        self,
        notebook_id: str | None = None,
        socket_path: str | Path | None = None,
        *,
        path: str | Path | None = None,
        client_name: str | None = None,
    ) -> None:
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._args = (notebook_id, socket_path, path, client_name)
        self._async: AsyncSession | None = None
        self._start_portal()

    def _start_portal(self) -> None:
        self._portal_cm = start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        notebook_id, socket_path, path, client_name = self._args

        async def make() -> AsyncSession:
            return AsyncSession(notebook_id, socket_path, path=path, client_name=client_name)

        self._async = self._portal.call(make)

    @classmethod
    def open(cls, path: str | Path, socket_path: str | Path | None = None) -> Self:
        """A session on the notebook file at ``path`` (created on save if missing)."""
        return cls(socket_path=socket_path, path=path)

    def _call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        if self._portal is None:
            self._start_portal()
        assert self._portal is not None
        result: T = self._portal.call(lambda: fn(*args, **kwargs))
        return result

    @property
    def _session(self) -> AsyncSession:
        if self._async is None:
            self._start_portal()
        assert self._async is not None
        return self._async

    # --- identity and connection ------------------------------------------------------

    @property
    def notebook_id(self) -> str:
        return self._session.notebook_id

    @property
    def path(self) -> str | None:
        return self._session.path

    @property
    def is_connected(self) -> bool:
        return self._async is not None and self._async.is_connected

    @property
    def document(self) -> NotebookDoc:
        return self._session.document

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"<Session notebook_id={self.notebook_id!r} {state}>"

    def connect(self) -> Self:
        self._call(self._session.connect)
        return self

    def close(self) -> None:
        """Leave the room and stop this session's thread. The daemon keeps the notebook."""
        if self._portal is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._session.close)
        portal_cm, self._portal_cm, self._portal = self._portal_cm, None, None
        if portal_cm is not None:
            portal_cm.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # --- document API ------------------------------------------------------------------

    def create_cell(self, source: str = "", cell_type: str = "code",
                    index: int | None = None) -> str:  # fmt: skip
        """Insert a cell (at the end when ``index`` is None); returns its id."""
        return self._call(self._session.create_cell, source, cell_type, index)

    def get_cell(self, cell_id: str) -> Cell:
        return self._call(self._session.get_cell, cell_id)

    def get_cells(self) -> list[Cell]:
        """Every cell, in document order."""
        return self._call(self._session.get_cells)

    def set_source(self, cell_id: str, text: str) -> None:
        self._call(self._session.set_source, cell_id, text)

    def append_source(self, cell_id: str, text: str) -> None:
        self._call(self._session.append_source, cell_id, text)

    def insert_source(self, cell_id: str, index: int, text: str) -> None:
        self._call(self._session.insert_source, cell_id, index, text)

    def move_cell(self, cell_id: str, index: int) -> None:
        self._call(self._session.move_cell, cell_id, index)

    def delete_cell(self, cell_id: str) -> None:
        self._call(self._session.delete_cell, cell_id)

    def set_metadata(self, key: str, value: Any) -> None:
        self._call(self._session.set_metadata, key, value)

    def get_metadata(self, key: str) -> Any:
        return self._call(self._session.get_metadata, key)

    def sync(self) -> None:
        self._call(self._session.sync)

    def save(self, path: str | Path | None = None) -> str:
        """Write the notebook as nbformat-valid .ipynb; returns the path written."""
        return self._call(self._session.save, path)

    def request(self, kind: str, timeout: float | None = 60.0, **params: Any) -> Any:
        return self._call(self._session.request, kind, timeout, **params)

    def add_listener(self, listener: EventListener) -> None:
        self._session.add_listener(listener)
