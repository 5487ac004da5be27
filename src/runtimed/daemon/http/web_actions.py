"""What the notebook page asks of a notebook's kernel over REST: interrupt, restart,
completion (Tab) and inspection (Shift-Tab), ``/api/notebooks/{id}/...``.

Completion and inspection go to the room's kernel as ``complete_request`` /
``inspect_request``; none is started for them: with no kernel running (or one that does
not answer while a cell runs) the answer is empty, as JupyterLab shows nothing then.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from runtimed.daemon.execution.room_kernel import RoomKernel
from runtimed.daemon.http.notebook_endpoints import NotebookEndpoints
from runtimed.daemon.http.openapi import Endpoint
from runtimed.daemon.http.rest_errors import read_body, reply
from runtimed.daemon.kernels.lifecycle import KernelLifecycle
from runtimed.errors import RuntimedError
from runtimed.protocol.room import Cancelled, Completions, Inspection, KernelDetails

#: A completion asked while a cell runs waits behind it (and jedi's first one takes
#: seconds in a cold kernel): past this the page gets none.
ASK_TIMEOUT_SECS = 20.0


class CompleteBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/notebooks/{id}/complete``: ``cursor_pos`` in code points (default:
    the end of ``code``)."""

    code: str
    cursor_pos: int | None = None


class InspectBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/notebooks/{id}/inspect``: the help of the name at ``cursor_pos``
    (``detail_level`` 1: with its source, as ``obj??``)."""

    code: str
    cursor_pos: int | None = None
    detail_level: int = 0


class WebActions(NotebookEndpoints):
    """The kernel actions of the page, as REST endpoints (in the OpenAPI document)."""

    def endpoints(self) -> list[Endpoint]:
        return [
            self.endpoint(
                "POST",
                "interrupt",
                self.interrupt,
                "interrupt the running cell; queued ones are cancelled (no kernel: 0)",
                Cancelled,
            ),
            self.endpoint(
                "POST",
                "restart",
                self.restart,
                "restart the notebook's kernel (start it if none runs)",
                KernelDetails,
                conflicts=True,
            ),
            self.endpoint(
                "POST",
                "complete",
                self.complete,
                "completions at a cursor from the notebook's kernel (none if no kernel runs)",
                Completions,
                body=CompleteBody,
            ),
            self.endpoint(
                "POST",
                "inspect",
                self.inspect,
                "the kernel's help on the name at a cursor (not found if no kernel runs)",
                Inspection,
                body=InspectBody,
            ),
        ]

    async def interrupt(self, request: web.Request) -> web.Response:
        room_kernel = await self.room_kernel(self.notebook_id(request))
        if not _running(room_kernel):
            return reply(Cancelled(room_kernel.queue.cancel_queued(reason="interrupted")))
        return reply(Cancelled(await room_kernel.interrupt()))

    async def restart(self, request: web.Request) -> web.Response:
        room_kernel = await self.room_kernel(self.notebook_id(request))
        if not _running(room_kernel):
            return reply(await room_kernel.launch())
        return reply(await room_kernel.restart())

    async def complete(self, request: web.Request) -> web.Response:
        body = await read_body(request, CompleteBody)
        cursor = _cursor(body.code, body.cursor_pos)
        room_kernel = await self.room_kernel(self.notebook_id(request))
        session = room_kernel.session
        none = Completions(matches=[], cursor_start=cursor, cursor_end=cursor)
        if session is None or not _running(room_kernel):
            return reply(none)
        try:
            result = await session.complete(body.code, cursor, timeout=ASK_TIMEOUT_SECS)
        except RuntimedError as exc:
            if exc.code != "kernel_timeout":
                raise
            return reply(none)
        return reply(
            Completions(
                matches=list(result.matches),
                cursor_start=result.cursor_start,
                cursor_end=result.cursor_end,
                metadata=dict(result.metadata),
            )
        )

    async def inspect(self, request: web.Request) -> web.Response:
        body = await read_body(request, InspectBody)
        cursor = _cursor(body.code, body.cursor_pos)
        if body.detail_level not in (0, 1):
            raise RuntimedError("detail_level must be 0 or 1", "invalid_request")
        room_kernel = await self.room_kernel(self.notebook_id(request))
        session = room_kernel.session
        if session is None or not _running(room_kernel):
            return reply(Inspection(found=False))
        content = {"code": body.code, "cursor_pos": cursor, "detail_level": body.detail_level}
        try:
            found = await session.shell_request("inspect_request", content, ASK_TIMEOUT_SECS)
        except RuntimedError as exc:
            if exc.code != "kernel_timeout":
                raise
            return reply(Inspection(found=False))
        return reply(
            Inspection(
                found=bool(found.get("found")),
                data=dict(found.get("data") or {}),
                metadata=dict(found.get("metadata") or {}),
            )
        )


def _running(room_kernel: RoomKernel) -> bool:
    session = room_kernel.session
    return session is not None and session.lifecycle is KernelLifecycle.RUNNING


def _cursor(code: str, cursor_pos: int | None) -> int:
    if cursor_pos is None:
        return len(code)
    if not 0 <= cursor_pos <= len(code):
        raise RuntimedError(
            f"cursor_pos must be from 0 to len(code) = {len(code)}", "invalid_request"
        )
    return cursor_pos
