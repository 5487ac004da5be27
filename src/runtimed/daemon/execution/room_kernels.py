"""RoomKernels: the ``RoomKernel`` of every open room, by notebook id.

Held next to ``RoomRequests`` (which make a room's kernel on its first kernel request)
and handed, as narrow views, to whoever needs the rooms' kernels: the ``RoomRegistry``
(a status for ``list_rooms``, closing a kernel with its room), the ``RuntimeRegistry``
(``runt ps``) and the disk keeper (the envs kernels run in).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from runtimed.daemon.execution.room_kernel import RoomKernel, RoomKernelDeps
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.errors import RuntimedError


class RoomKernels:
    """Makes, finds and closes rooms' kernels."""

    def __init__(self, deps: RoomKernelDeps) -> None:
        self.deps = deps
        self._by_notebook: dict[str, RoomKernel] = {}
        # Rooms already closed: a request of theirs still running makes no new kernel.
        self._closed: weakref.WeakSet[NotebookRoom] = weakref.WeakSet()

    def of(self, room: NotebookRoom) -> RoomKernel:
        """The room's kernel, made on first use."""
        room_kernel = self._by_notebook.get(room.notebook_id)
        if room_kernel is not None and room_kernel.room is room:
            return room_kernel
        if room in self._closed:
            raise RuntimedError("the notebook was closed", "closed")
        room_kernel = self._by_notebook[room.notebook_id] = RoomKernel(room, self.deps)
        return room_kernel

    def get(self, notebook_id: str) -> RoomKernel | None:
        """The kernel of an open room, if it has one."""
        return self._by_notebook.get(notebook_id)

    def __iter__(self) -> Iterator[RoomKernel]:
        return iter(list(self._by_notebook.values()))

    def status(self, notebook_id: str) -> str | None:
        """What ``list_rooms`` shows of a room's kernel; None when it has none."""
        room_kernel = self._by_notebook.get(notebook_id)
        return room_kernel.status if room_kernel is not None else None

    def env_paths(self) -> set[str]:
        """The env dirs rooms' kernels run in (in use: never collected)."""
        return {path for k in self._by_notebook.values() if (path := k.env_path) is not None}

    async def close(self, room: NotebookRoom) -> None:
        """The room is going: its kernel stops and its env is given back."""
        self._closed.add(room)
        room_kernel = self._by_notebook.get(room.notebook_id)
        if room_kernel is None or room_kernel.room is not room:
            return
        del self._by_notebook[room.notebook_id]
        await room_kernel.close()
