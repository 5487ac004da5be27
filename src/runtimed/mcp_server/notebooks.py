"""The notebooks this MCP server has open: one live ``AsyncSession`` per notebook.

Each open notebook is a peer of its room like any other client, so what the agent does
appears to everyone at once and what others do is in the agent's replica. The last
notebook opened or created is the *current* one; tools act on it unless told otherwise.
Execution ids are remembered with their notebook, so ``get_results`` finds them from any
later call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from mcp.server.mcpserver.exceptions import ToolError

from runtimed.client import AsyncDaemonClient, AsyncSession
from runtimed.errors import RuntimedError
from runtimed.files import atomic_write
from runtimed.mcp_server import dependencies
from runtimed.mcp_server.input_waits import InputWaits
from runtimed.paths import default_cache_dir

log = logging.getLogger(__name__)

CLIENT_NAME = "runt mcp"
RECENT_FILE = "mcp-recent.json"
MAX_RECENT = 20
MAX_EXECUTIONS = 10_000
#: Bytes of an existing file read to see whether it is a notebook before a save replaces it.
MAX_CHECKED_BYTES = 256 << 20


@dataclass
class OpenNotebook:
    """One notebook the server holds open, and its session."""

    session: AsyncSession
    opened_at: float = field(default_factory=time.time)
    kernel_start: asyncio.Task[Any] | None = None
    #: Where an untitled notebook was last saved (its room keeps its untitled id).
    saved_path: str | None = None
    #: The input() prompts of its cells the agent ran (send_input answers them).
    inputs: InputWaits = field(default_factory=InputWaits)

    def __post_init__(self) -> None:
        self.session.add_listener(self.inputs.on_event)

    @property
    def notebook_id(self) -> str:
        return self.session.notebook_id

    @property
    def path(self) -> str | None:
        return self.session.path

    @property
    def file(self) -> str | None:
        """The file that save_notebook() without a path writes."""
        return self.path or self.saved_path

    @property
    def label(self) -> str:
        return self.path or self.notebook_id

    async def ready(self) -> AsyncSession:
        """The session, connected (it reconnects after a lost connection)."""
        if not self.session.is_connected:
            await self.session.connect()
        return self.session


class Notebooks:
    """Open notebooks by id, the current one, recent files, and execution owners."""

    def __init__(
        self,
        socket_path: str | Path | None = None,
        recent_path: Path | None = None,
        client_name: str = CLIENT_NAME,
    ) -> None:
        self.socket_path = socket_path
        self.client_name = client_name
        self._recent_path = recent_path
        self._open: dict[str, OpenNotebook] = {}
        self._current: str | None = None
        self._executions: dict[str, str] = {}
        self._lock = asyncio.Lock()

    # --- finding -----------------------------------------------------------------------

    @property
    def open_notebooks(self) -> list[OpenNotebook]:
        return list(self._open.values())

    @property
    def current_id(self) -> str | None:
        return self._current

    def get(self, notebook: str | None = None) -> OpenNotebook:
        """The open notebook named by id or path (None: the current one)."""
        if notebook is None or not notebook.strip():
            if self._current is None or self._current not in self._open:
                raise ToolError(
                    "no notebook is open; call open_notebook(path) or create_notebook() first"
                )
            return self._open[self._current]
        found = self._open.get(notebook)
        if found is None and "\x00" not in notebook:  # realpath refuses NUL
            wanted = os.path.realpath(os.path.expanduser(notebook))
            found = next((nb for nb in self._open.values() if nb.path == wanted), None)
        if found is None:
            names = ", ".join(nb.label for nb in self._open.values()) or "none"
            raise ToolError(
                f"notebook {notebook!r} is not open here (open: {names}); call "
                "open_notebook(path) for a file, or list_notebooks() to see the rooms"
            )
        return found

    # --- opening and closing ------------------------------------------------------------

    async def open(self, path: str, start_kernel: bool = True) -> tuple[OpenNotebook, bool]:
        """Join the room of the notebook file at ``path``; (notebook, was it open)."""
        target = notebook_path(path)
        kind = path_kind(target)
        if kind == "missing":
            raise ToolError(
                f"{target} does not exist; create it with create_notebook(path={str(target)!r})"
            )
        if kind != "file":
            raise ToolError(f"{target} is not a file")
        async with self._lock:
            for nb in self._open.values():
                if nb.path == str(target):
                    self._current = nb.notebook_id
                    return nb, True
            session = AsyncSession(
                socket_path=self.socket_path, path=target, client_name=self.client_name
            )
            nb = await self._join(session, start_kernel)
        self._remember_recent(str(target))
        return nb, False

    async def create(
        self, path: str | None, deps: list[str] | None, start_kernel: bool = True
    ) -> OpenNotebook:
        """A new notebook: a file at ``path`` (written at once), or untitled (in memory
        until saved). ``deps`` become its inline dependencies before the kernel starts."""
        target = notebook_path(path) if path is not None else None
        if target is not None:
            if path_kind(target) != "missing":
                raise ToolError(f"{target} already exists; open it with open_notebook")
            if path_kind(target.parent) == "missing" or not target.parent.is_dir():
                raise ToolError(f"{target.parent} is not an existing directory")
        specs = dependencies.check_specs(deps) if deps else []
        async with self._lock:
            session = AsyncSession(
                socket_path=self.socket_path, path=target, client_name=self.client_name
            )
            nb = await self._join(session, start_kernel=False)
            try:
                if specs:
                    runt = await session.get_metadata(dependencies.METADATA_KEY)
                    await session.set_metadata(
                        dependencies.METADATA_KEY, dependencies.with_dependencies(runt, specs)
                    )
                if target is not None:
                    await session.save()
            except BaseException:
                await self._drop(nb)
                raise
        if target is not None:
            self._remember_recent(str(target))
        if start_kernel:
            self.start_kernel_soon(nb)
        return nb

    async def _join(self, session: AsyncSession, start_kernel: bool) -> OpenNotebook:
        await session.connect()
        nb = OpenNotebook(session)
        self._open[nb.notebook_id] = nb
        self._current = nb.notebook_id
        if start_kernel:
            self.start_kernel_soon(nb)
        return nb

    def start_kernel_soon(self, nb: OpenNotebook) -> None:
        """Start the notebook's kernel in the background (the first run is then quick).
        A failure shows in kernel_status and is retried by the next execution."""

        async def start() -> None:
            try:
                await nb.session.start_kernel()
            except RuntimedError as exc:
                log.info("kernel of %s did not start: %s", nb.label, exc.message)

        if nb.kernel_start is None or nb.kernel_start.done():
            nb.kernel_start = asyncio.create_task(start())

    async def close(self, notebook: str | None) -> OpenNotebook:
        nb = self.get(notebook)
        await self._drop(nb)
        return nb

    async def _drop(self, nb: OpenNotebook) -> None:
        self._open.pop(nb.notebook_id, None)
        if self._current == nb.notebook_id:
            self._current = next(reversed(self._open), None) if self._open else None
        if nb.kernel_start is not None and not nb.kernel_start.done():
            nb.kernel_start.cancel()
        with contextlib.suppress(RuntimedError, OSError):
            await nb.session.close()

    async def aclose(self) -> None:
        for nb in list(self._open.values()):
            await self._drop(nb)

    async def __aenter__(self) -> Notebooks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- executions ----------------------------------------------------------------------

    def remember(self, execution_id: str, nb: OpenNotebook) -> None:
        self._executions[execution_id] = nb.notebook_id
        if len(self._executions) > MAX_EXECUTIONS:
            self._executions.pop(next(iter(self._executions)))

    def owner(self, execution_id: str) -> OpenNotebook | None:
        notebook_id = self._executions.get(execution_id)
        return self._open.get(notebook_id) if notebook_id else None

    # --- listing ----------------------------------------------------------------------

    async def rooms(self) -> list[dict[str, Any]]:
        """The daemon's open rooms, marked with what this server holds."""
        async with AsyncDaemonClient(self.socket_path, timeout=10) as client:
            found = await client.list_rooms()
        return [
            {
                "notebook_id": room.notebook_id,
                "path": room.path,
                "peers": room.active_peers,
                "kernel": room.kernel_status if room.has_kernel else None,
                "open_here": room.notebook_id in self._open,
                "current": room.notebook_id == self._current,
            }
            for room in found
        ]

    def recent(self) -> list[dict[str, Any]]:
        return [
            {"path": path, "last_used": used, "exists": os.path.exists(path)}
            for path, used in self._read_recent()
        ]

    def _recent_file(self) -> Path:
        return self._recent_path or default_cache_dir() / RECENT_FILE

    def _read_recent(self) -> list[tuple[str, float]]:
        try:
            items = json.loads(self._recent_file().read_text())
            return [(str(i["path"]), float(i["last_used"])) for i in items]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _remember_recent(self, path: str) -> None:
        items = [(p, t) for p, t in self._read_recent() if p != path]
        items.insert(0, (path, round(time.time(), 3)))
        data = [{"path": p, "last_used": t} for p, t in items[:MAX_RECENT]]
        target = self._recent_file()
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(target, json.dumps(data, indent=1).encode(), sync=False)
        except OSError as exc:
            log.info("could not record %s as recent: %s", path, exc)

    def saved_as(self, path: str) -> None:
        self._remember_recent(path)


def notebook_path(path: str) -> Path:
    """An absolute, real .ipynb path (relative to this server's working directory)."""
    text = path.strip()
    if not text:
        raise ToolError("path must not be empty")
    if "\x00" in text:
        raise ToolError("path must not contain NUL characters")
    target = Path(os.path.realpath(os.path.expanduser(text)))
    if target.suffix != ".ipynb":
        raise ToolError(f"{text!r} is not a notebook path: it must end in .ipynb")
    return target


def path_kind(target: Path) -> str:
    """``missing``, ``file`` (a regular file) or ``other`` (a directory, a FIFO, ...);
    a path the system refuses (too long, no permission) is a ToolError saying why."""
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise ToolError(f"cannot use {target}: {exc.strerror or exc}") from None
    return "file" if stat.S_ISREG(mode) else "other"


class _NotebookShape(msgspec.Struct):
    """What a file must have to count as a notebook (the cells are not decoded)."""

    cells: list[msgspec.Raw]
    nbformat: int


def check_save_target(target: Path, own_file: str | None, force: bool) -> None:
    """Refuse to write over anything but a notebook (a file that is not one only with
    ``force``, a directory or device never); the notebook's own file is always fine."""
    if own_file is not None and str(target) == own_file:
        return
    kind = path_kind(target)
    if kind == "missing":
        if path_kind(target.parent) == "missing" or not target.parent.is_dir():
            raise ToolError(f"{target.parent} is not an existing directory")
        return
    if kind == "other":
        raise ToolError(f"{target} exists and is not a regular file; choose another path")
    if force:
        return
    why = _not_a_notebook(target)
    if why:
        raise ToolError(
            f"{target} exists and is not a notebook ({why}); saving would replace it: pass "
            "force=true to overwrite it, or choose another path"
        )


def _not_a_notebook(target: Path) -> str | None:
    try:
        size = target.stat().st_size
        if size > MAX_CHECKED_BYTES:
            return f"{size} bytes, too big to check"
        msgspec.json.decode(target.read_bytes(), type=_NotebookShape)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "not nbformat JSON with cells"
    return None
