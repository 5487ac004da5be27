"""Notebook-channel requests (0x01 frames) and their replies (0x02), as tagged unions.

A request is ``{"id": n, "type": ..., <fields>}``; its reply is ``{"id": n, "ok": true,
"result": {"type": ..., <fields>}}`` or ``{"id": n, "ok": false, "error", "code"}``.
The daemon decodes a request once, where the frame arrives, and dispatches on its type;
the clients build the same Structs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from runtimed.protocol.codec import decode_request, encode

RequestId = int | str | None


class _Request(msgspec.Struct, frozen=True, tag_field="type", kw_only=True):
    id: RequestId = None


# --- requests: the document ------------------------------------------------------------


class SyncRequest(_Request, frozen=True, tag="sync"):
    """A round trip: every frame sent before it has been applied and logged."""


class SaveRequest(_Request, frozen=True, tag="save"):
    #: Absolute path of the .ipynb to write; None: the notebook's own file.
    path: str | None = None
    #: Overwrite the notebook's own file even if it changed on disk since it was loaded.
    force: bool = False


class GetInfoRequest(_Request, frozen=True, tag="get_info"):
    pass


# --- requests: the kernel --------------------------------------------------------------


class LaunchKernelRequest(_Request, frozen=True, tag="launch_kernel"):
    kernel_type: str = "python"
    env_source: str = "auto"
    notebook_path: str | None = None


class ExecuteCellRequest(_Request, frozen=True, tag="execute_cell"):
    cell_id: str
    #: This client answers the cell's ``input()``: the event ``input_request`` comes to
    #: it alone, ``input_reply`` answers. False: ``input()`` raises StdinNotAvailable.
    stdin: bool = False


class RunCodeRequest(_Request, frozen=True, tag="run_code"):
    """Append a code cell holding ``code`` and queue it (what ``Session.run`` does): the
    daemon writes the cell, so the kernel gets the code without the client's edit
    having to reach the daemon first."""

    code: str
    #: As for ``execute_cell``.
    stdin: bool = False


class InputReplyRequest(_Request, frozen=True, tag="input_reply"):
    """The answer to an ``input_request`` event (only its execution's client may)."""

    execution_id: str
    value: str


class RunAllCellsRequest(_Request, frozen=True, tag="run_all_cells"):
    #: An error cancels the cells after it (False: every cell runs).
    stop_on_error: bool = True


class InterruptRequest(_Request, frozen=True, tag="interrupt"):
    pass


class RestartKernelRequest(_Request, frozen=True, tag="restart_kernel"):
    pass


class ShutdownKernelRequest(_Request, frozen=True, tag="shutdown_kernel"):
    pass


class ClearOutputsRequest(_Request, frozen=True, tag="clear_outputs"):
    cell_id: str


class CompleteRequest(_Request, frozen=True, tag="complete"):
    code: str = ""
    #: None: the end of ``code``.
    cursor_pos: int | None = None


class InspectRequest(_Request, frozen=True, tag="inspect"):
    """The kernel's help on the name at ``cursor_pos`` (``obj?``; 1: ``obj??``)."""

    code: str = ""
    cursor_pos: int | None = None
    detail_level: int = 0


class GetExecutionRequest(_Request, frozen=True, tag="get_execution"):
    execution_id: str


class KernelInfoRequest(_Request, frozen=True, tag="kernel_info"):
    pass


class TrustRequest(_Request, frozen=True, tag="trust"):
    """The notebook's dependencies that need the user's approval; with ``approve``, approve
    them (``packages``: only these names) in ``<config dir>/trusted-packages.sqlite``."""

    approve: bool = False
    packages: list[str] | None = None
    env_source: str = "auto"


# --- requests: widgets -----------------------------------------------------------------


class SetWidgetStateRequest(_Request, frozen=True, tag="set_widget_state"):
    """Change a widget model (``model_id``: its comm id) the kernel opened: every peer
    sees it in the runtime document's ``widgets`` map, the kernel gets one ``comm_msg``
    (``method: update``)."""

    model_id: str
    state: dict[str, Any]


class SendWidgetMessageRequest(_Request, frozen=True, tag="send_widget_message"):
    """A custom message to a widget model in the kernel (``comm_msg``, ``method:
    custom``): a button's click is ``{"event": "click"}``."""

    model_id: str
    content: Any


RoomRequest = (
    SyncRequest
    | SaveRequest
    | GetInfoRequest
    | LaunchKernelRequest
    | ExecuteCellRequest
    | RunCodeRequest
    | InputReplyRequest
    | RunAllCellsRequest
    | InterruptRequest
    | RestartKernelRequest
    | ShutdownKernelRequest
    | ClearOutputsRequest
    | CompleteRequest
    | InspectRequest
    | GetExecutionRequest
    | KernelInfoRequest
    | TrustRequest
    | SetWidgetStateRequest
    | SendWidgetMessageRequest
)

REQUEST_TYPES: dict[str, type[RoomRequest]] = {
    t.__struct_config__.tag: t  # type: ignore[misc]
    for t in RoomRequest.__args__  # type: ignore[attr-defined]
}


# --- results ---------------------------------------------------------------------------


class Synced(msgspec.Struct, frozen=True, tag="synced", tag_field="type"):
    cells: int


class Saved(msgspec.Struct, frozen=True, tag="saved", tag_field="type"):
    path: str


class RoomDetails(msgspec.Struct, frozen=True, tag="room_info", tag_field="type"):
    notebook_id: str
    path: str | None
    epoch: str
    peers: int
    cells: int


class KernelDetails(msgspec.Struct, frozen=True, tag="kernel_info", tag_field="type"):
    """The room kernel's state (as in the runtime document) plus its process."""

    lifecycle: str = "not_started"
    activity: str | None = None
    env_source: str | None = None
    name: str | None = None
    language: str | None = None
    error: str | None = None
    python_path: str | None = None
    pid: int | None = None


class ExecutionRecord(msgspec.Struct, frozen=True, tag="execution", tag_field="type"):
    """One run of one cell: queued, then running, then done / error / cancelled."""

    execution_id: str
    cell_id: str
    status: str = "queued"
    execution_count: int | None = None
    success: bool | None = None
    queued_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    batch: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Its fields as a plain dict (all scalars), as in events and the runtime doc."""
        return {f: getattr(self, f) for f in self.__struct_fields__}


class ExecutionQueued(msgspec.Struct, frozen=True, tag="queued", tag_field="type"):
    execution_id: str
    #: The queued cell (``run_code``: the cell the daemon appended).
    cell_id: str = ""


class BatchQueued(msgspec.Struct, frozen=True, tag="batch_queued", tag_field="type"):
    execution_ids: list[str]


class Cancelled(msgspec.Struct, frozen=True, tag="cancelled", tag_field="type"):
    cancelled: int


class Completions(msgspec.Struct, frozen=True, tag="completions", tag_field="type"):
    matches: list[str]
    cursor_start: int
    cursor_end: int
    metadata: dict[str, Any] = {}


class Inspection(msgspec.Struct, frozen=True, tag="inspection", tag_field="type"):
    """An ``inspect_reply``: ``data`` is a mime bundle (``text/plain`` has ANSI colours)."""

    found: bool
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}


class Done(msgspec.Struct, frozen=True, tag="done", tag_field="type"):
    pass


class UntrustedPackage(msgspec.Struct, frozen=True):
    """A dependency not in the allowlist: ``name`` (normalised; conda: + ``channel``),
    the ``spec`` and ``origin`` it came from, and ``warnings`` (look-alike names, direct
    URLs or local paths). ``label`` names it in an approval (``packages``): the name, or
    ``name (channel)`` for conda."""

    name: str
    ecosystem: str
    spec: str
    origin: str
    channel: str = ""
    warnings: list[str] = []
    label: str = ""


class TrustReport(msgspec.Struct, frozen=True, tag="trust_report", tag_field="type"):
    """``untrusted``: what still needs approval; ``approved``: what this request approved;
    ``note``: why nothing needs approval (a project file you keep, created here, ...)."""

    env_source: str
    untrusted: list[UntrustedPackage] = []
    approved: list[UntrustedPackage] = []
    note: str = ""


RoomResult = (
    Synced
    | Saved
    | RoomDetails
    | KernelDetails
    | ExecutionRecord
    | ExecutionQueued
    | BatchQueued
    | Cancelled
    | Completions
    | Inspection
    | Done
    | TrustReport
)


class RoomReply(msgspec.Struct, frozen=True, omit_defaults=True):
    id: RequestId
    ok: bool
    result: RoomResult | None = None
    error: str | None = None
    code: str | None = None


_request_decoder = msgspec.json.Decoder(RoomRequest)
_reply_decoder = msgspec.json.Decoder(RoomReply)


def decode_room_request(data: bytes) -> RoomRequest:
    """Raises ProtocolError (not a JSON object) or RequestError (answer it, keep going)."""
    return decode_request(_request_decoder, data, "room request", RoomRequest)  # type: ignore[no-any-return]


def decode_room_reply(data: bytes) -> RoomReply:
    return _reply_decoder.decode(data)


__all__ = ["encode"]
