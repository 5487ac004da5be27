"""The pool (control) channel: requests and replies as msgspec tagged unions."""

from __future__ import annotations

from typing import Literal

import msgspec

from runtimed.protocol.codec import decode
from runtimed.protocol.runtimes import RuntimeRequest, RuntimeResponse

EnvType = Literal["uv", "conda"]
ENV_TYPES: tuple[EnvType, ...] = ("uv", "conda")


# --- pool channel: requests ------------------------------------------------------------


class Ping(msgspec.Struct, tag="ping", tag_field="type", frozen=True):
    pass


class Status(msgspec.Struct, tag="status", tag_field="type", frozen=True):
    pass


class Take(msgspec.Struct, tag="take", tag_field="type", frozen=True):
    env_type: EnvType = "uv"
    #: How long to wait for a ready env when the pool is empty; None = daemon default.
    timeout_secs: float | None = None


class EnvRef(msgspec.Struct, frozen=True):
    venv_path: str
    env_type: EnvType | None = None


class Return(msgspec.Struct, tag="return", tag_field="type", frozen=True):
    env: EnvRef


class FlushPool(msgspec.Struct, tag="flush_pool", tag_field="type", frozen=True):
    pass


class Shutdown(msgspec.Struct, tag="shutdown", tag_field="type", frozen=True):
    pass


class ListRooms(msgspec.Struct, tag="list_rooms", tag_field="type", frozen=True):
    pass


class GetDaemonInfo(msgspec.Struct, tag="get_daemon_info", tag_field="type", frozen=True):
    pass


class ListEnvs(msgspec.Struct, tag="list_envs", tag_field="type", frozen=True):
    pass


class CleanEnvs(msgspec.Struct, tag="clean_envs", tag_field="type", frozen=True):
    """Collect disk now: unused inline envs (over the limits, or all of them), stored
    rooms nobody will open again, then unreferenced blobs."""

    all: bool = False
    #: Remove unused inline envs not used for this many days (None: the setting).
    max_age_days: float | None = None
    dry_run: bool = False


PoolRequest = (
    Ping
    | Status
    | Take
    | Return
    | FlushPool
    | Shutdown
    | ListRooms
    | GetDaemonInfo
    | ListEnvs
    | CleanEnvs
    | RuntimeRequest
)


# --- pool channel: responses -----------------------------------------------------------


class PooledEnv(msgspec.Struct, frozen=True):
    """An environment handed out by a pool; the caller owns it until it returns it."""

    env_type: EnvType
    venv_path: str
    python_path: str
    prewarmed_packages: list[str]
    env_id: str = ""
    package_hash: str = ""
    created_at: float = 0.0


class Pong(msgspec.Struct, tag="pong", tag_field="type", frozen=True):
    protocol_version: int
    daemon_version: str


class PoolError(msgspec.Struct, frozen=True):
    """The last build failure of a pool, and when it will be retried."""

    message: str
    step: str
    attempts: int
    retry_at: float
    kind: str = "build"
    spec: str | None = None


class PoolStatus(msgspec.Struct, frozen=True):
    env_type: EnvType
    available: int
    warming: int
    target: int
    packages: list[str]
    error: PoolError | None = None


class KernelPoolStatus(msgspec.Struct, frozen=True):
    """Started, idle kernels waiting for a new notebook of ``env_source``."""

    env_source: str
    available: int
    warming: int
    target: int
    error: str | None = None


class StatusReply(msgspec.Struct, tag="status", tag_field="type", frozen=True):
    pools: dict[str, PoolStatus]
    kernels: KernelPoolStatus | None = None
    rooms: int = 0
    uptime_secs: float = 0.0


class EnvReply(msgspec.Struct, tag="env", tag_field="type", frozen=True):
    env: PooledEnv


class EmptyReply(msgspec.Struct, tag="empty", tag_field="type", frozen=True):
    env_type: EnvType
    message: str


class OkReply(msgspec.Struct, tag="ok", tag_field="type", frozen=True):
    message: str = ""


class RoomInfo(msgspec.Struct, frozen=True):
    notebook_id: str
    path: str | None
    active_peers: int
    has_kernel: bool
    kernel_status: str | None = None


class RoomsReply(msgspec.Struct, tag="rooms", tag_field="type", frozen=True):
    rooms: list[RoomInfo]


class DaemonInfo(msgspec.Struct, tag="daemon_info", tag_field="type", frozen=True):
    pid: int
    version: str
    protocol_version: int
    socket_path: str
    cache_dir: str
    started_at: float
    blob_port: int | None = None
    #: The HTTP server (REST API, websockets), once started; None when off or not yet up.
    http_url: str | None = None


class EnvUsage(msgspec.Struct, frozen=True):
    """One env on disk."""

    name: str
    path: str
    #: uv / conda / pyproject (built from a notebook's dependencies), or pool-uv / pool-conda
    kind: str
    size_bytes: int
    created_at: float
    last_used_at: float
    in_use: bool


class DiskReply(msgspec.Struct, tag="disk", tag_field="type", frozen=True):
    envs: list[EnvUsage]
    stored_rooms: int
    stored_rooms_bytes: int
    blobs: int
    blobs_bytes: int


class CleanReply(msgspec.Struct, tag="cleaned", tag_field="type", frozen=True):
    removed_envs: list[EnvUsage]
    removed_rooms: int
    removed_blobs: int
    freed_bytes: int
    dry_run: bool


class ErrorReply(msgspec.Struct, tag="error", tag_field="type", frozen=True):
    message: str
    code: str = "error"


PoolResponse = (
    Pong
    | StatusReply
    | EnvReply
    | EmptyReply
    | OkReply
    | RoomsReply
    | DaemonInfo
    | DiskReply
    | CleanReply
    | RuntimeResponse
    | ErrorReply
)

_request_decoder = msgspec.json.Decoder(PoolRequest)
_response_decoder = msgspec.json.Decoder(PoolResponse)


def decode_request(data: bytes) -> PoolRequest:
    return decode(_request_decoder, data, "pool request", PoolRequest)  # type: ignore[no-any-return]


def decode_response(data: bytes) -> PoolResponse:
    return decode(_response_decoder, data, "pool response", PoolResponse)  # type: ignore[no-any-return]
