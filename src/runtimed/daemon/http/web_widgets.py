"""What the notebook page's widgets ask of the kernel over REST (issue 26):
``POST /api/notebooks/{id}/widgets/{model_id}/state`` (a person moved a slider) and
``.../message`` (a button's click, an anywidget's ``model.send``).

Both are the room requests ``set_widget_state`` / ``send_widget_message`` every runtimed
client makes (``daemon/widgets/comm_relay.py``): the change reaches every peer through
the runtime document's ``widgets`` map, and the kernel gets it once. Binary values (an
``ArrayBuffer`` or ``DataView`` the page sets, the buffers of a custom message) come
base64-encoded in ``buffers`` and reach the kernel as the comm message's buffers.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import msgspec
from aiohttp import web

from runtimed.daemon.execution.room_kernel import RoomKernel
from runtimed.daemon.http.notebook_endpoints import NotebookEndpoints
from runtimed.daemon.http.openapi import Endpoint
from runtimed.daemon.http.rest_errors import read_body, reply
from runtimed.errors import RuntimedError
from runtimed.protocol.room import Done

#: ipywidgets model ids are comm ids (32 hex digits); anything path-safe and short.
_MODEL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class WidgetStateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST .../widgets/{model_id}/state``: the changed traits (name -> JSON value);
    binary values as ipywidgets sends them: ``buffer_paths`` (where each goes in the
    state) and ``buffers`` (base64, one per path)."""

    state: dict[str, Any]
    buffer_paths: list[list[str | int]] = []
    buffers: list[str] = []


class WidgetMessageBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST .../widgets/{model_id}/message``: a custom message's content (a button's
    click is ``{"event": "click"}``) and its binary ``buffers`` (base64)."""

    content: Any
    buffers: list[str] = []


def _decoded(buffers: list[str]) -> list[bytes]:
    try:
        return [base64.b64decode(b, validate=True) for b in buffers]
    except (binascii.Error, ValueError):
        raise RuntimedError("buffers must be base64 strings", "invalid_request") from None


class WebWidgets(NotebookEndpoints):
    """The page's widget actions, as REST endpoints (in the OpenAPI document)."""

    def endpoints(self) -> list[Endpoint]:
        return [
            self.endpoint(
                "POST",
                "widgets/{model_id}/state",
                self.set_state,
                "change a widget model: every peer sees it, the kernel gets one update",
                Done,
                body=WidgetStateBody,
                conflicts=True,
            ),
            self.endpoint(
                "POST",
                "widgets/{model_id}/message",
                self.send_message,
                "a custom message to a widget model in the kernel (a button's click)",
                Done,
                body=WidgetMessageBody,
                conflicts=True,
            ),
        ]

    async def _target(self, request: web.Request) -> tuple[RoomKernel, str]:
        notebook_id = self.notebook_id(request)
        model_id = request.match_info["model_id"]
        if not _MODEL_ID.fullmatch(model_id):
            raise RuntimedError(
                "malformed widget model id: 1-128 letters, digits, '_' or '-' (the model's "
                "comm id, a key of the runtime document's widgets map)",
                "invalid_request",
            )
        return await self.room_kernel(notebook_id), model_id

    async def set_state(self, request: web.Request) -> web.Response:
        body = await read_body(request, WidgetStateBody)
        if len(body.buffer_paths) != len(body.buffers):
            raise RuntimedError(
                "buffer_paths and buffers must have one entry per binary value",
                "invalid_request",
            )
        buffers = list(zip(body.buffer_paths, _decoded(body.buffers), strict=True))
        room_kernel, model_id = await self._target(request)
        room_kernel.comms.set_state(model_id, body.state, buffers)
        # Peers see it now, not with the next batch (as a room request's response does).
        room_kernel.runtime_state.flush()
        return reply(Done())

    async def send_message(self, request: web.Request) -> web.Response:
        body = await read_body(request, WidgetMessageBody)
        room_kernel, model_id = await self._target(request)
        room_kernel.comms.send_custom(model_id, body.content, _decoded(body.buffers))
        return reply(Done())
