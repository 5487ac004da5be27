"""Runtimes and execution history on the pool channel: the records clients see."""

from __future__ import annotations

from typing import Any

import msgspec


class RuntimeInfo(msgspec.Struct, frozen=True):
    """One kernel: owned by the daemon (a room's, or started with ``runt start``), or,
    with ``list_runtimes(all=True)``, found in Jupyter's runtime dir (``owned`` False)."""

    runtime_id: str
    kernel_name: str | None = None
    language: str | None = None
    pid: int | None = None
    #: idle / busy / starting / dead / shutdown
    status: str = "unknown"
    transport: str | None = None
    connection_file: str | None = None
    notebook_id: str | None = None
    notebook_path: str | None = None
    env_source: str | None = None
    started_at: float | None = None
    last_activity: float | None = None
    owned: bool = True


class ExecutionEntry(msgspec.Struct, frozen=True):
    """One execution from the history. ``outputs`` only in ``get_execution``."""

    id: str
    execution_id: str
    notebook_id: str
    cell_id: str
    status: str
    runtime_id: str | None = None
    source: str | None = None
    execution_count: int | None = None
    success: bool | None = None
    queued_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    outputs: list[dict[str, Any]] | None = None
    kernel_name: str | None = None
    language: str | None = None
    #: The kernel's language_info (``get_execution`` only): what an export needs.
    language_info: dict[str, Any] | None = None


# --- requests --------------------------------------------------------------------------


class ListRuntimes(msgspec.Struct, tag="list_runtimes", tag_field="type", frozen=True):
    all: bool = False


class StartRuntime(msgspec.Struct, tag="start_runtime", tag_field="type", frozen=True):
    kernel: str = "python3"
    env_source: str = "auto"
    cwd: str | None = None


class KillRuntime(msgspec.Struct, tag="kill_runtime", tag_field="type", frozen=True):
    runtime_ids: list[str]


class InterruptRuntime(msgspec.Struct, tag="interrupt_runtime", tag_field="type", frozen=True):
    runtime_id: str


class RestartRuntime(msgspec.Struct, tag="restart_runtime", tag_field="type", frozen=True):
    runtime_id: str


class ListExecutions(msgspec.Struct, tag="list_executions", tag_field="type", frozen=True):
    notebook: str | None = None
    runtime_id: str | None = None
    limit: int = 50
    #: Oldest first (what an export needs) instead of newest first.
    oldest_first: bool = False


class GetExecution(msgspec.Struct, tag="get_execution", tag_field="type", frozen=True):
    execution_id: str


RuntimeRequest = (
    ListRuntimes
    | StartRuntime
    | KillRuntime
    | InterruptRuntime
    | RestartRuntime
    | ListExecutions
    | GetExecution
)


# --- replies ---------------------------------------------------------------------------


class RuntimesReply(msgspec.Struct, tag="runtimes", tag_field="type", frozen=True):
    runtimes: list[RuntimeInfo]


class RuntimeReply(msgspec.Struct, tag="runtime", tag_field="type", frozen=True):
    runtime: RuntimeInfo


class ExecutionsReply(msgspec.Struct, tag="executions", tag_field="type", frozen=True):
    executions: list[ExecutionEntry]


class ExecutionReply(msgspec.Struct, tag="execution_entry", tag_field="type", frozen=True):
    execution: ExecutionEntry


RuntimeResponse = RuntimesReply | RuntimeReply | ExecutionsReply | ExecutionReply
