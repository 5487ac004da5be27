"""What the notebook page's REST endpoint groups share (``web_actions``, ``web_widgets``,
``web_trust``, ``web_input``): each is a ``NotebookEndpoints`` that states its operations
under ``/api/notebooks/{id}/`` and what they do; finding the open room a request names
(and restarting its eviction clock) is done here, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from aiohttp import web

from runtimed.daemon.execution.room_kernel import RoomKernel
from runtimed.daemon.http.openapi import Endpoint
from runtimed.daemon.http.rest_errors import Handler
from runtimed.daemon.http.rest_execute import NotebookAccess, NotebookParts, keep_alive
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_registry import validate_notebook_id
from runtimed.errors import RuntimedError

#: The path of a notebook's operations: ``{id}`` is its id (URL-encoded).
NOTEBOOK_PATH = "/api/notebooks/{id}"
#: What a ``not_found`` for a closed notebook tells the client to do.
HOW_TO_OPEN = "open it with POST /api/notebooks"


class NotebookEndpoints(ABC):
    """A group of REST operations on open notebooks (in the OpenAPI document).

    ``notebooks`` gives the daemon's ``NotebookService`` once it is built.
    """

    def __init__(self, notebooks: NotebookAccess) -> None:
        self.notebooks = notebooks

    @abstractmethod
    def endpoints(self) -> list[Endpoint]:
        """The group's operations (``RestApi`` routes and describes them)."""

    @staticmethod
    def endpoint(
        method: str,
        action: str,
        handler: Handler,
        summary: str,
        reply: type,
        *,
        body: type | None = None,
        conflicts: bool = False,
        forbids: bool = False,
    ) -> Endpoint:
        """The operation ``method /api/notebooks/{id}/<action>``."""
        return Endpoint(
            method,
            f"{NOTEBOOK_PATH}/{action}",
            handler,
            summary,
            reply,
            body=body,
            conflicts=conflicts,
            forbids=forbids,
        )

    @staticmethod
    def notebook_id(request: web.Request) -> str:
        """The notebook id in the URL (``invalid_notebook_id`` if malformed)."""
        return validate_notebook_id(request.match_info["id"])

    async def open_room(
        self, notebook_id: str, how_to_open: str | None = HOW_TO_OPEN
    ) -> tuple[NotebookParts, NotebookRoom]:
        """The notebook service and the open room of ``notebook_id``, whose eviction
        clock starts again; ``not_found`` (with ``how_to_open``) if it is not open."""
        parts = await self.notebooks()
        room = parts.rooms.rooms.get(notebook_id)
        if room is None:
            advice = f"; {how_to_open}" if how_to_open else ""
            raise RuntimedError(f"notebook {notebook_id!r} is not open{advice}", "not_found")
        keep_alive(parts.rooms, room)
        return parts, room

    async def room_kernel(self, notebook_id: str) -> RoomKernel:
        """The kernel side of the open room of ``notebook_id`` (see ``open_room``)."""
        parts, room = await self.open_room(notebook_id)
        return parts.room_kernels.of(room)
