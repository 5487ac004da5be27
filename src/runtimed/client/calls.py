"""Every request of the pool and settings channels as a ``Call``: built, timed and decoded
here once, for the blocking and the asyncio clients alike (the blob channel's are in
``blobs.py``: a notebook session needs only those)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from runtimed.client.core import MORE, Call, RequestIds, single
from runtimed.errors import RuntimedError
from runtimed.protocol.codec import encode
from runtimed.protocol.control import (
    CleanEnvs,
    CleanReply,
    DaemonInfo,
    DiskReply,
    EmptyReply,
    EnvRef,
    EnvReply,
    ErrorReply,
    FlushPool,
    GetDaemonInfo,
    ListEnvs,
    ListRooms,
    OkReply,
    Ping,
    Pong,
    PooledEnv,
    PoolRequest,
    PoolResponse,
    Return,
    RoomInfo,
    RoomsReply,
    Shutdown,
    Status,
    StatusReply,
    Take,
    decode_response,
)
from runtimed.protocol.frames import FrameType, pack, unpack
from runtimed.protocol.framing import PROTOCOL_VERSION
from runtimed.protocol.runtimes import (
    ExecutionEntry,
    ExecutionReply,
    ExecutionsReply,
    GetExecution,
    InterruptRuntime,
    KillRuntime,
    ListExecutions,
    ListRuntimes,
    RestartRuntime,
    RuntimeInfo,
    RuntimeReply,
    RuntimesReply,
    StartRuntime,
)
from runtimed.protocol.settings import (
    GetSetting,
    SetSetting,
    SettingsRequest,
    decode_settings_reply,
)

T = TypeVar("T")

#: How much longer than a take's own wait the client waits for the answer.
TAKE_GRACE_SECS = 10.0


# --- pool channel ------------------------------------------------------------------------


def _pool_reply(frame: bytes) -> PoolResponse:
    reply = decode_response(frame)
    if isinstance(reply, ErrorReply):
        raise RuntimedError(reply.message, reply.code)
    return reply


def _expect(reply: PoolResponse, kind: type[T]) -> T:
    if not isinstance(reply, kind):
        raise RuntimedError(f"unexpected reply from the daemon: {reply!r}", "protocol_error")
    return reply


def _pool_call(
    request: PoolRequest, timeout: float | None, read: Callable[[PoolResponse], T]
) -> Call[T]:
    return Call(single(request), lambda f: read(_pool_reply(f)), timeout, request_name(request))


def request_name(request: msgspec.Struct) -> str:
    return str(type(request).__struct_config__.tag)


def _pong(reply: PoolResponse) -> Pong:
    pong = _expect(reply, Pong)
    if pong.protocol_version != PROTOCOL_VERSION:
        raise RuntimedError(
            f"the daemon (runtimed {pong.daemon_version}) speaks protocol "
            f"{pong.protocol_version}, this client protocol {PROTOCOL_VERSION}; run "
            "`runt daemon restart` to start the installed version",
            "version_mismatch",
        )
    return pong


def _taken(reply: PoolResponse) -> PooledEnv | None:
    return None if isinstance(reply, EmptyReply) else _expect(reply, EnvReply).env


class PoolCalls:
    """The pool channel's requests, with one timeout policy."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout

    def ping(self) -> Call[Pong]:
        return _pool_call(Ping(), self.timeout, _pong)

    def status(self) -> Call[StatusReply]:
        return _pool_call(Status(), self.timeout, lambda r: _expect(r, StatusReply))

    def take(self, env_type: str, timeout: float | None) -> Call[PooledEnv | None]:
        request = Take(env_type=env_type, timeout_secs=timeout)  # type: ignore[arg-type]
        # The daemon may wait ``timeout`` for a build: wait longer than that for its answer.
        wait = self.timeout
        if timeout is not None and wait is not None:
            wait = max(wait, timeout + TAKE_GRACE_SECS)
        return _pool_call(request, wait, _taken)

    def return_env(self, venv_path: str) -> Call[str]:
        request = Return(EnvRef(venv_path=str(venv_path)))
        return _pool_call(request, self.timeout, lambda r: _expect(r, OkReply).message)

    def flush_pool(self) -> Call[None]:
        return _pool_call(FlushPool(), self.timeout, lambda r: _none(_expect(r, OkReply)))

    def list_rooms(self) -> Call[list[RoomInfo]]:
        return _pool_call(ListRooms(), self.timeout, lambda r: _expect(r, RoomsReply).rooms)

    def daemon_info(self) -> Call[DaemonInfo]:
        return _pool_call(GetDaemonInfo(), self.timeout, lambda r: _expect(r, DaemonInfo))

    def list_envs(self) -> Call[DiskReply]:
        return _pool_call(ListEnvs(), self.timeout, lambda r: _expect(r, DiskReply))

    def clean_envs(
        self, all: bool = False, max_age_days: float | None = None, dry_run: bool = False
    ) -> Call[CleanReply]:
        request = CleanEnvs(all=all, max_age_days=max_age_days, dry_run=dry_run)
        return _pool_call(request, self.timeout, lambda r: _expect(r, CleanReply))

    def shutdown(self) -> Call[None]:
        return _pool_call(Shutdown(), self.timeout, lambda r: _none(_expect(r, OkReply)))

    # --- runtimes and history --------------------------------------------------------

    def list_runtimes(self, all: bool = False) -> Call[list[RuntimeInfo]]:
        request = ListRuntimes(all=all)
        return _pool_call(request, self.timeout, lambda r: _expect(r, RuntimesReply).runtimes)

    def start_runtime(
        self, kernel: str = "python3", env_source: str = "auto", cwd: str | None = None
    ) -> Call[RuntimeInfo]:
        request = StartRuntime(kernel=kernel, env_source=env_source, cwd=cwd)
        return _pool_call(request, self.timeout, _runtime)

    def kill_runtimes(self, runtime_ids: list[str]) -> Call[list[str]]:
        request = KillRuntime(runtime_ids=list(runtime_ids))
        return _pool_call(request, self.timeout, lambda r: _expect(r, OkReply).message.split())

    def interrupt_runtime(self, runtime_id: str) -> Call[RuntimeInfo]:
        return _pool_call(InterruptRuntime(runtime_id), self.timeout, _runtime)

    def restart_runtime(self, runtime_id: str) -> Call[RuntimeInfo]:
        return _pool_call(RestartRuntime(runtime_id), self.timeout, _runtime)

    def executions(
        self,
        notebook: str | None = None,
        runtime_id: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> Call[list[ExecutionEntry]]:
        request = ListExecutions(
            notebook=notebook, runtime_id=runtime_id, limit=limit, oldest_first=oldest_first
        )
        return _pool_call(request, self.timeout, lambda r: _expect(r, ExecutionsReply).executions)

    def get_execution(self, execution_id: str) -> Call[ExecutionEntry]:
        request = GetExecution(execution_id)
        return _pool_call(request, self.timeout, lambda r: _expect(r, ExecutionReply).execution)


def _runtime(reply: PoolResponse) -> RuntimeInfo:
    return _expect(reply, RuntimeReply).runtime


def _none(_: object) -> None:
    return None


# --- settings channel --------------------------------------------------------------------


class SettingsCalls:
    """Settings requests; replies are matched by id (document sync frames are skipped)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._ids = RequestIds()

    def _call(self, request: SettingsRequest) -> Call[Any]:
        def receive(frame: bytes) -> Any:
            frame_type, payload = unpack(frame)
            if frame_type is not FrameType.RESPONSE:
                return MORE  # document sync and events are for live replicas
            reply = decode_settings_reply(payload)
            if reply.id != request.id:
                return MORE
            if not reply.ok or reply.result is None:
                raise RuntimedError(reply.error or "settings request failed", reply.code or "error")
            return reply.result.value

        return Call((pack(FrameType.REQUEST, encode(request)),), receive, self.timeout, "settings")

    def get_all(self) -> Call[dict[str, Any]]:
        return self._call(GetSetting(id=self._ids.next()))

    def get(self, key: str) -> Call[Any]:
        return self._call(GetSetting(id=self._ids.next(), key=key))

    def set(self, key: str, value: Any) -> Call[Any]:
        return self._call(SetSetting(id=self._ids.next(), key=key, value=value))
